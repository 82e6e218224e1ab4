// Decoding of the data contract. Its types are generated from Python into contract.ts (never edit that file).

import { Blob64, PAYLOAD_VERSION, Payload } from "./contract";

export type { Blob64, ModelInfo, NeuronPayload, Payload, Resolved, Side, StackPayload } from "./contract";
export { PAYLOAD_VERSION } from "./contract";

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
