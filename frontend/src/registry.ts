// The one table of views on the page side: one line per view. ViewName comes from Python's registry
// (contract.ts is generated), so tsc fails here when a view is registered there and not here.

import { AtlasView } from "./atlas";
import { CompareView } from "./compare";
import { ContributionView } from "./contribution";
import { ViewName } from "./contract";
import { HeadView } from "./head";
import { HeatmapView } from "./heatmap";
import { ModelView } from "./model";
import { NeuronView } from "./neuron";
import { PageState } from "./state";

export interface ViewEntry {
  title: string;
  /** Build the view's element for the page's shared state. */
  make: (state: PageState) => HTMLElement;
  /** True when the view can draw from the narrowed attention of a neuron-only page. */
  narrowed?: boolean;
}

export const VIEWS: Record<ViewName, ViewEntry> = {
  head: { title: "Head view", make: (s) => new HeadView(s, { controls: true }).node },
  model: { title: "Model view", make: (s) => new ModelView(s).node },
  neuron: { title: "Neuron view", make: (s) => new NeuronView(s).node, narrowed: true },
  heatmap: { title: "Heatmap", make: (s) => new HeatmapView(s).node },
  contribution: { title: "Contribution", make: (s) => new ContributionView(s).node },
  atlas: { title: "Head atlas", make: (s) => new AtlasView(s).node },
  compare: { title: "Comparison", make: (s) => new CompareView(s).node },
};

/** The element of view `name`, or a clear error when this page's data cannot show it. */
export function makeView(name: string, state: PageState): HTMLElement {
  const entry = (VIEWS as Record<string, ViewEntry | undefined>)[name];
  if (!entry) throw new Error(`this bundle has no view called ${JSON.stringify(name)}`);
  if (!entry.narrowed && state.stacks.some((s) => s.narrowed)) {
    throw new Error(`this page holds attention for the neuron view only; it cannot show the ${entry.title}`);
  }
  return entry.make(state);
}
