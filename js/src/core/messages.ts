// Messages to the kernel. `sendLatest` coalesces gestures (slider drags, hovers that need the kernel):
// at most one message per type is in flight; newer values replace the waiting one, so the kernel never
// works through a backlog of stale values. The kernel acknowledges each with {type: "_ack", id}.
import type { Model } from "./types";

interface Slot {
  inFlight: number | null;
  waiting: Record<string, unknown> | null;
  timer: ReturnType<typeof setTimeout> | null;
}

interface Channel {
  nextId: number;
  slots: Map<string, Slot>;
  byId: Map<number, string>;
  listener: (msg: any) => void;
  listeners: Set<(msg: any) => void>;
}

const channels = new WeakMap<Model, Channel>();
const ACK_TIMEOUT_MS = 30000; // a dead or very busy kernel must not block gestures forever

/** Set up the message channel of a model (called once per model from `initialize`). */
export function channel(model: Model): Channel {
  let ch = channels.get(model);
  if (ch) return ch;
  const fresh: Channel = {
    nextId: 1,
    slots: new Map(),
    byId: new Map(),
    listeners: new Set(),
    listener: (msg: any) => {
      if (msg && msg.type === "_ack") release(model, fresh, Number(msg.id));
      for (const l of fresh.listeners) l(msg);
    },
  };
  model.on("msg:custom", fresh.listener);
  channels.set(model, fresh);
  return fresh;
}

export function closeChannel(model: Model): void {
  const ch = channels.get(model);
  if (!ch) return;
  model.off("msg:custom", ch.listener);
  for (const slot of ch.slots.values()) if (slot.timer) clearTimeout(slot.timer);
  channels.delete(model);
}

/** Listen to custom messages from the kernel; returns the cleanup. */
export function onMessage(model: Model, fn: (msg: any) => void): () => void {
  const ch = channel(model);
  ch.listeners.add(fn);
  return () => ch.listeners.delete(fn);
}

/** Send a gesture right away (clicks, buttons). */
export function send(model: Model, type: string, body: Record<string, unknown> = {}): void {
  model.send({ ...body, type });
}

/** Send a gesture whose newest value is all that matters (sliders, hovers, typing). */
export function sendLatest(model: Model, type: string, body: Record<string, unknown> = {}): void {
  const ch = channel(model);
  let slot = ch.slots.get(type);
  if (!slot) ch.slots.set(type, (slot = { inFlight: null, waiting: null, timer: null }));
  if (slot.inFlight !== null) {
    slot.waiting = body;
    return;
  }
  dispatch(model, ch, type, slot, body);
}

function dispatch(model: Model, ch: Channel, type: string, slot: Slot, body: Record<string, unknown>): void {
  const id = ch.nextId++;
  slot.inFlight = id;
  ch.byId.set(id, type);
  slot.timer = setTimeout(() => release(model, ch, id), ACK_TIMEOUT_MS);
  model.send({ ...body, type, _ack: id });
}

function release(model: Model, ch: Channel, id: number): void {
  const type = ch.byId.get(id);
  if (type === undefined) return;
  ch.byId.delete(id);
  const slot = ch.slots.get(type);
  if (!slot || slot.inFlight !== id) return;
  if (slot.timer) clearTimeout(slot.timer);
  slot.inFlight = null;
  slot.timer = null;
  const next = slot.waiting;
  slot.waiting = null;
  if (next) dispatch(model, ch, type, slot, next);
}
