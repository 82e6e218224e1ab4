// The app's JSON API as the page uses it (documented in the README, served by src/attnscope/app/server.py).
// Every call goes to the page's own server; an error answer ({"error": "..."}) becomes an ApiError whose
// message the page shows as text.

import type { Payload } from "./contract";

export interface ModelsAnswer {
  models: string[];
  indexes: { name: string; model: string }[];
  atlases?: string[];
}

export interface Candidate {
  token: string;
  prob: number;
}

export interface PositionPrediction {
  position: number;
  token: string;
  top: Candidate[];
  layers: Candidate[][] | null;
}

export interface Predictions {
  kind: "masked" | "next" | null;
  lens?: string;
  edits: { index: number; token: string; now: string | null }[];
  predictions: PositionPrediction[];
}

export interface TraceAnswer {
  tokens: string[];
  payload: Payload;
  compare: Payload | null;
  predictions: Predictions | null;
}

export interface TraceQuestion {
  model: string;
  text: string;
  text_pair?: string;
  mask: number[];
  k: number;
  logit_lens: boolean;
}

export interface Match {
  sentence: string;
  sentence_index: number;
  tokens: string[];
  token_index: number;
  token: string;
  score: number;
  attends_to: number;
  pos: string | null;
  dep: string | null;
  head: number | null;
}

export interface SearchAnswer {
  query: { tokens: string[]; token: number; layer: number; heads: number[] | null; by: string };
  matches: Match[];
  summary: { pos: Record<string, number>; dep: Record<string, number> };
}

export interface SearchQuestion {
  index: string;
  model: string;
  text: string;
  text_pair?: string;
  token: number;
  layer: number;
  heads?: number[];
  k: number;
}

export class ApiError extends Error {}

/** GET or POST (with a JSON body) one of the API's paths; the parsed answer, or an ApiError with its message. */
export async function call<T>(path: string, body?: unknown): Promise<T> {
  const init: RequestInit =
    body === undefined ? { method: "GET" } : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let response: Response;
  try {
    response = await fetch(path, { ...init, credentials: "same-origin", cache: "no-store" });
  } catch (err) {
    throw new ApiError(`the server did not answer (${String(err)}); is attnscope serve still running?`);
  }
  let data: unknown = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data && typeof data === "object" && "error" in data ? String((data as { error: unknown }).error) : "";
    const retry = response.headers.get("Retry-After");
    throw new ApiError(`${response.status}: ${message || response.statusText}${retry ? ` (retry in ${retry} s)` : ""}`);
  }
  return data as T;
}
