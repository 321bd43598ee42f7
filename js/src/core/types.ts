// The slice of the anywidget model API the views use (also what the test fake implements).
export type Handler = (...args: any[]) => void;

export interface Model {
  get(name: string): any;
  set(name: string, value: unknown): void;
  on(event: string, callback: Handler): void;
  off(event?: string | null, callback?: Handler | null): void;
  save_changes(): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

export interface RenderProps {
  model: Model;
  el: HTMLElement;
}

export type Cleanup = () => void;
export type View = (props: RenderProps) => Cleanup | void;
