// Decoded attention stacks and the page-wide state (labels, theme, delimiter hiding) shared by every view.

import { headColour } from "./colours";
import { MeasurePayload } from "./contract";
import { Arr, NeuronPayload, Payload, Resolved, Side, decodeBlob } from "./payload";

/** What a measure stack shows instead of attention (absent: raw attention). */
export type MeasureInfo = Omit<MeasurePayload, "data">;

/** One attention stack [layers, heads, query, key] with optional hiding of special tokens. */
export class Stack {
  readonly layers: number;
  readonly heads: number;
  readonly nq: number;
  readonly nk: number;
  /** The trace's layer and head behind each index here (a neuron-only page holds only some). */
  readonly layerIds: number[];
  readonly headIds: number[];
  /** True when this stack holds only some of the trace's layers or heads. */
  readonly narrowed: boolean;
  private readonly scale: number;
  private readonly rowSums = new Map<number, Float32Array>();

  constructor(
    readonly name: string,
    readonly query: Side,
    readonly key: Side,
    private readonly arr: Arr,
    layerIds?: number[],
    headIds?: number[],
    /** Set when this stack holds a contribution measure (scaled into [0, 1]) instead of attention. */
    readonly measure?: MeasureInfo,
  ) {
    [this.layers, this.heads, this.nq, this.nk] = arr.shape;
    this.narrowed = layerIds !== undefined || headIds !== undefined;
    this.layerIds = layerIds ?? Array.from({ length: this.layers }, (_, i) => i);
    this.headIds = headIds ?? Array.from({ length: this.heads }, (_, i) => i);
    if (this.layerIds.length !== this.layers || this.headIds.length !== this.heads) {
      throw new Error(`stack ${name}: ${this.layerIds.length} layers x ${this.headIds.length} heads listed, data has ${this.layers} x ${this.heads}`);
    }
    this.scale = arr.values instanceof Uint8Array ? 1 / 255 : 1;
  }

  /** Raw attention weight of query q to key k in one head. */
  raw(layer: number, head: number, q: number, k: number): number {
    return this.arr.values[((layer * this.heads + head) * this.nq + q) * this.nk + k] * this.scale;
  }

  /** Offset of row (layer, head, q) in the flat array, and its scale, for fast inner loops. */
  row(layer: number, head: number, q: number): number {
    return ((layer * this.heads + head) * this.nq + q) * this.nk;
  }

  get values(): Uint8Array | Float32Array {
    return this.arr.values;
  }

  /**
   * Multipliers per query row: 0 for hidden rows, else scale / (sum over non-special keys) when
   * special tokens are hidden, else the plain scale. Weight = values[row + k] * factor[q] (0 for hidden keys).
   */
  factors(layer: number, head: number, hideSpecial: boolean): Float32Array {
    const id = (layer * this.heads + head) * 2 + (hideSpecial ? 1 : 0);
    let f = this.rowSums.get(id);
    if (f) return f;
    f = new Float32Array(this.nq);
    const v = this.arr.values;
    for (let q = 0; q < this.nq; q++) {
      if (!hideSpecial) {
        f[q] = this.scale;
        continue;
      }
      if (this.query.special[q]) continue;
      if (this.measure) {
        f[q] = this.scale; // a measure's rows need not sum to 1: delimiters zeroed, not renormalised
        continue;
      }
      const base = this.row(layer, head, q);
      let sum = 0;
      for (let k = 0; k < this.nk; k++) if (!this.key.special[k]) sum += v[base + k];
      f[q] = sum > 0 ? 1 / sum : 0;
    }
    this.rowSums.set(id, f);
    return f;
  }

  /** Attention weight as shown: hidden special tokens give 0 and rows renormalise to sum 1. */
  weight(layer: number, head: number, q: number, k: number, hideSpecial: boolean): number {
    if (hideSpecial && this.key.special[k]) return 0;
    return this.arr.values[this.row(layer, head, q) + k] * this.factors(layer, head, hideSpecial)[q];
  }
}

export interface Neuron {
  info: NeuronPayload;
  queries: Arr;
  keys: Arr;
  mask: Arr;
  bias: Arr | null;
}

type Listener = () => void;

/** Everything the views of one root share; views subscribe to be repainted on page-wide changes. */
export class PageState {
  base: number;
  theme: "dark" | "light";
  hideSpecial: boolean;
  /** "attention" or the name of the measure the views show (the page's selector). */
  measure: string;
  /** The contribution view's rows [layers, Q, K] (payload.contribution), decoded. */
  contribution: Arr | null = null;
  /** The comparison view's two traces (payload.compare.traces), decoded. */
  compared: PageState[] = [];
  private listeners: Listener[] = [];
  private spec: Resolved;

  constructor(
    readonly payload: Payload,
    readonly stacks: Stack[],
    readonly neurons: Neuron[],
    readonly measureStacks: Stack[] = [],
  ) {
    this.base = payload.resolved.index_base;
    this.theme = payload.resolved.theme;
    this.hideSpecial = payload.resolved.hide_special;
    this.measure = payload.resolved.measure ?? "attention";
    this.spec = payload.resolved;
  }

  /** The spec Python resolved once for both renderers (stack, heads, colours, thresholds), fitted to the measure shown. */
  get resolved(): Resolved {
    return this.spec;
  }

  /** The measures the page can show (names), raw attention first. */
  get measureNames(): string[] {
    return ["attention", ...new Set(this.measureStacks.map((s) => s.measure!.name))];
  }

  /** Show `name` ("attention" or a measure) in every view; layers and heads are refitted when its shape differs. */
  setMeasure(name: string): void {
    const before = this.stack(this.spec.stack);
    this.measure = name;
    const now = this.stack(this.spec.stack);
    const r = this.payload.resolved;
    const start = this.startStack();
    const same = (a: Stack, b: Stack) => a.layers === b.layers && a.heads === b.heads;
    if (same(now, start)) {
      this.spec = { ...r, measure: name };
    } else if (!same(now, before) || this.spec.measure !== name) {
      const all = (n: number) => Array.from({ length: n }, (_, i) => i);
      this.spec = {
        ...r,
        measure: name,
        layer: Math.min(r.layer, now.layers - 1),
        heads: all(now.heads),
        include_layers: all(now.layers),
        include_heads: all(now.heads),
      };
    }
    const info = now.measure;
    this.spec = { ...this.spec, measure_title: info?.title ?? "attention", measure_scale: info?.scale ?? "", measure_per_head: info?.per_head ?? true };
  }

  private startStack(): Stack {
    const m = this.payload.resolved.measure ?? "attention";
    const name = this.payload.resolved.stack;
    return this.measureStacks.find((s) => s.name === name && s.measure!.name === m) ?? this.stacks.find((s) => s.name === name) ?? this.stacks[0];
  }

  /** What the views' values are, for titles and legends: "attention", or the measure with its scale. */
  valueName(): string {
    const info = this.stack(this.spec.stack)?.measure; // a page of another subject (the atlas) has no stacks
    if (!info) return "attention";
    return `${info.name}: ${info.title}${info.scale ? ` (${info.scale})` : ""}`;
  }

  /** "head N", or "all heads" for a measure without heads. */
  headTitle(head: number): string {
    const label = this.headLabel(head);
    return label === "all heads" ? label : `head ${label}`;
  }

  /** A layer's label: the trace layer behind row `layer` of `st` (default: the stack shown), numbered as the page. */
  layerLabel(layer: number, st?: Stack): string {
    const stack = st ?? this.stack(this.spec.stack);
    return this.label(stack?.layerIds[layer] ?? layer);
  }

  /** A head's label ("all heads" for a measure without heads). */
  headLabel(head: number): string {
    return this.stack(this.spec.stack)?.measure?.per_head === false ? "all heads" : this.label(head);
  }

  /** The colour of a head (the same as in the PNG/SVG export). */
  colour(head: number): string {
    return headColour(this.payload.resolved, head);
  }

  /** Whether an additive mask value masks its key (the resolved threshold, as in the export). */
  masked(mask: number): boolean {
    return mask <= this.payload.resolved.mask_threshold;
  }

  static async decode(payload: Payload): Promise<PageState> {
    const stacks = await Promise.all(
      payload.stacks.map(
        async (s) =>
          new Stack(s.name, payload.sides[s.query], payload.sides[s.key], await decodeBlob(s.attention), s.layers, s.heads),
      ),
    );
    const neurons = await Promise.all(
      payload.neuron.map(async (n) => ({
        info: n,
        queries: await decodeBlob(n.queries),
        keys: await decodeBlob(n.keys),
        mask: await decodeBlob(n.mask),
        bias: n.bias ? await decodeBlob(n.bias) : null,
      })),
    );
    const measureStacks: Stack[] = [];
    for (const s of payload.stacks) {
      for (const m of s.measures ?? []) {
        const { data, ...info } = m;
        measureStacks.push(new Stack(s.name, payload.sides[s.query], payload.sides[s.key], await decodeBlob(data), info.layers, undefined, info));
      }
    }
    const state = new PageState(payload, stacks, neurons, measureStacks);
    if (payload.contribution) state.contribution = await decodeBlob(payload.contribution.values);
    if (payload.compare) state.compared = await Promise.all(payload.compare.traces.map((p) => PageState.decode(p)));
    return state;
  }

  /** The stack the views draw: the chosen measure's when the page shows one and the stack has it, else attention. */
  stack(name: string): Stack {
    if (this.measure !== "attention") {
      const m = this.measureStacks.find((s) => s.name === name && s.measure!.name === this.measure);
      if (m) return m;
    }
    return this.rawStack(name);
  }

  /** A stack's raw attention, whatever measure is shown (the neuron view explains the softmax). */
  rawStack(name: string): Stack {
    return this.stacks.find((s) => s.name === name) ?? this.stacks[0]; // undefined only on a page of no trace (atlas)
  }

  /** A layer or head number as labelled on the page (0- or 1-based). */
  label(index: number): string {
    return String(index + this.base);
  }

  subscribe(fn: Listener): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }

  changed(): void {
    for (const fn of this.listeners) fn();
  }
}
