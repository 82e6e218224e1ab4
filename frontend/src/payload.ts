// The data contract (version 2) as Python's attnscope.views.payload writes it, and its decoding.

export const PAYLOAD_VERSION = 2;

export interface Blob64 {
  dtype: "uint8" | "float32";
  shape: number[];
  data: string; // base64 of zlib-deflated little-endian bytes
}

export interface Side {
  labels: string[];
  special: number[];
  segment: number[];
}

export interface StackPayload {
  name: string;
  query: string;
  key: string;
  attention: Blob64;
  // Present on a neuron-only page: the trace's layers and heads the attention holds (absent: all of them).
  layers?: number[];
  heads?: number[];
}

export interface NeuronPayload {
  stack: string;
  layers: number[];
  heads: number[];
  queries: Blob64;
  keys: Blob64;
  scale: number[];
  mask: Blob64;
  bias: Blob64 | null;
}

export interface Options {
  layer: number;
  heads: number[] | null;
  include_layers: number[] | null;
  include_heads: number[] | null;
  stack: string;
  query_index: number;
  theme: "dark" | "light";
  index_base: number;
  hide_special: boolean;
}

export interface Payload {
  version: number;
  views: string[];
  model: { name: string; num_layers: number; num_heads: number; [key: string]: unknown };
  options: Options;
  precision: string;
  sides: { [name: string]: Side };
  stacks: StackPayload[];
  neuron: NeuronPayload[];
}

/** A decoded numeric array with its shape. */
export interface Arr {
  shape: number[];
  values: Uint8Array | Float32Array;
}

function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function inflate(bytes: Uint8Array): Promise<ArrayBuffer> {
  if (typeof DecompressionStream === "undefined") {
    throw new Error("this browser lacks DecompressionStream (needs Chrome 80+, Firefox 113+, Safari 16.4+)");
  }
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Response(stream).arrayBuffer();
}

export async function decodeBlob(blob: Blob64): Promise<Arr> {
  const buffer = await inflate(fromBase64(blob.data));
  const values = blob.dtype === "uint8" ? new Uint8Array(buffer) : new Float32Array(buffer);
  const expected = blob.shape.reduce((a, b) => a * b, 1);
  if (values.length !== expected) throw new Error(`array of ${values.length} values, expected ${expected}`);
  return { shape: blob.shape, values };
}

export function checkPayload(data: unknown): Payload {
  const p = data as Payload;
  if (!p || typeof p !== "object" || p.version !== PAYLOAD_VERSION) {
    const got = p && typeof p === "object" ? String(p.version) : typeof p;
    throw new Error(`attnscope view data version ${got}; this bundle reads version ${PAYLOAD_VERSION}`);
  }
  return p;
}
