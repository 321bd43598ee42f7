// A hand-written stand-in for the anywidget model, and a recording 2D canvas context (jsdom has none).
export class FakeModel {
  state: Record<string, any>;
  sent: any[] = [];
  saved = 0;
  private handlers = new Map<string, Set<(...a: any[]) => void>>();

  constructor(state: Record<string, any>) {
    this.state = { error: "", progress: {}, ...state };
  }
  get(name: string) {
    return this.state[name];
  }
  set(name: string, value: unknown) {
    const old = this.state[name];
    this.state[name] = value;
    if (old !== value) this.emit(`change:${name}`, value);
  }
  on(event: string, cb: (...a: any[]) => void) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(cb);
  }
  off(event?: string | null, cb?: ((...a: any[]) => void) | null) {
    if (!event) this.handlers.clear();
    else if (!cb) this.handlers.delete(event);
    else this.handlers.get(event)?.delete(cb);
  }
  save_changes() {
    this.saved++;
  }
  send(content: unknown) {
    this.sent.push(content);
  }
  /** What the kernel does: push a custom message to the browser. */
  emit(event: string, ...args: unknown[]) {
    for (const cb of [...(this.handlers.get(event) ?? [])]) cb(...args);
  }
  listenerCount(event: string) {
    return this.handlers.get(event)?.size ?? 0;
  }
}

export interface Call {
  op: string;
  args: unknown[];
  fillStyle?: string;
}

/** Record every drawing call; `fills()` lists the colours of filled rectangles. */
export function installRecordingCanvas(): Call[] {
  const calls: Call[] = [];
  const proto = HTMLCanvasElement.prototype as any;
  proto.getContext = function () {
    if (this.__ctx) return this.__ctx;
    const state: any = { fillStyle: "#000000", strokeStyle: "#000000", font: "10px sans-serif", lineWidth: 1 };
    const record = (op: string) => (...args: unknown[]) => {
      calls.push({ op, args, fillStyle: state.fillStyle, canvas: this } as Call);
    };
    this.__ctx = new Proxy(state, {
      get(target, prop: string) {
        if (prop in target) return target[prop];
        if (prop === "measureText") return (s: string) => ({ width: 7 * s.length });
        return record(prop);
      },
      set(target, prop: string, value) {
        target[prop] = value;
        return true;
      },
    });
    return this.__ctx;
  };
  return calls;
}

/** Pack like ffn_widgets.widgets.arrays.pack, with the data as a DataView into a larger buffer
 * (ipywidgets hands buffers to the browser like that), so byteOffset handling is exercised. */
export function packed(dtype: "float32" | "int32" | "uint8" | "uint16" | "float16", shape: number[], values: number[]) {
  const Ctor: any = { float32: Float32Array, int32: Int32Array, uint8: Uint8Array, uint16: Uint16Array, float16: Uint16Array }[dtype];
  const arr = dtype === "float16" ? Uint16Array.from(values.map(toHalf)) : Ctor.from(values);
  const pad = 8;
  const big = new Uint8Array(arr.byteLength + pad + 8);
  big.set(new Uint8Array(arr.buffer), pad);
  return { dtype, shape, data: new DataView(big.buffer, pad, arr.byteLength) };
}

export function toHalf(v: number): number {
  // Round-to-nearest float32 -> float16 bits, enough for tests.
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >> 16) & 0x8000;
  let exp = ((u >> 23) & 0xff) - 127 + 15;
  let mant = u & 0x7fffff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  mant = mant + 0x1000;
  if (mant & 0x800000) {
    mant = 0;
    exp += 1;
  }
  return sign | (exp << 10) | (mant >> 13);
}
