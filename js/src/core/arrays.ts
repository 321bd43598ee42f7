// Decode the {dtype, shape, data} payloads that ffn_widgets/widgets/arrays.py packs.
export type DType = "float32" | "float16" | "int32" | "uint8" | "uint16";

export interface Packed {
  dtype: DType;
  shape: number[];
  data: DataView | ArrayBuffer | ArrayBufferView;
}

export interface NDArray<T = Float32Array | Int32Array | Uint8Array | Uint16Array> {
  data: T;
  shape: number[];
}

function bytesOf(data: Packed["data"]): { buffer: ArrayBufferLike; byteOffset: number; byteLength: number } {
  if (data instanceof ArrayBuffer) return { buffer: data, byteOffset: 0, byteLength: data.byteLength };
  // DataView (what ipywidgets hands us) and typed arrays: the view may start inside a larger buffer.
  const v = data as ArrayBufferView;
  return { buffer: v.buffer, byteOffset: v.byteOffset, byteLength: v.byteLength };
}

/** Copy into a fresh aligned buffer when the offset is not a multiple of the element size. */
function view<T>(ctor: { new (b: ArrayBufferLike, o: number, n: number): T; BYTES_PER_ELEMENT: number }, data: Packed["data"]): T {
  const { buffer, byteOffset, byteLength } = bytesOf(data);
  const n = Math.floor(byteLength / ctor.BYTES_PER_ELEMENT);
  if (byteOffset % ctor.BYTES_PER_ELEMENT === 0) return new ctor(buffer, byteOffset, n);
  const copy = new Uint8Array(byteLength);
  copy.set(new Uint8Array(buffer as ArrayBuffer, byteOffset, byteLength));
  return new ctor(copy.buffer, 0, n);
}

export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function decode(p: Packed): NDArray {
  if (!p || !p.shape || p.data === undefined) throw new Error("not a packed array");
  const size = p.shape.reduce((a, b) => a * b, 1);
  let data: Float32Array | Int32Array | Uint8Array | Uint16Array;
  switch (p.dtype) {
    case "float32": data = view(Float32Array, p.data); break;
    case "int32": data = view(Int32Array, p.data); break;
    case "uint8": data = view(Uint8Array, p.data); break;
    case "uint16": data = view(Uint16Array, p.data); break;
    case "float16": {
      const bits = view(Uint16Array, p.data);
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = halfToFloat(bits[i]);
      data = out;
      break;
    }
    default: throw new Error(`unknown dtype ${(p as Packed).dtype}`);
  }
  if (data.length !== size) throw new Error(`array of shape [${p.shape}] has ${data.length} elements`);
  return { data, shape: p.shape };
}

export function decodeFloat(p: Packed): NDArray<Float32Array> {
  const a = decode(p);
  return { data: a.data instanceof Float32Array ? a.data : Float32Array.from(a.data), shape: a.shape };
}

export function decodeInt(p: Packed): NDArray<Int32Array> {
  const a = decode(p);
  return { data: a.data instanceof Int32Array ? a.data : Int32Array.from(a.data), shape: a.shape };
}
