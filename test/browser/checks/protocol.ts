// What Node sends to the routing-checks page and what the page sends back (plain JSON).
import type { BackendName } from 'gradient-routing';

export interface RoutingCheckInput {
  backend: BackendName;
  shape: number[];
  /** The routed values, row-major. */
  x: number[];
  /** The mask, same shape as `x`. */
  mask: number[];
  /** The upstream gradient, same shape as `x`. */
  dy: number[];
}

/** Float32 values are returned as their bit patterns (uint32), so -0 and NaN survive JSON. */
export type RoutingCheckResult =
  | { available: false; reason: string }
  | {
      available: true;
      /** What selectBackend returned and what tfjs reports as active. */
      backend: string;
      activeBackend: string;
      /** routeGradients(x, mask). */
      forward: number[];
      /** x · 1 computed by the backend, and routeGradients of that. */
      onDevice: number[];
      forwardOnDevice: number[];
      /** d/dx of routeGradients(x, mask) for upstream dy. */
      gradient: number[];
      tensorsBefore: number;
      tensorsAfter: number;
    };

/** What Node sends to the optimiser check: variables and per-step gradients, row-major. */
export interface OptimiserCheckInput {
  backend: BackendName;
  shapes: number[][];
  weights: number[][];
  /** gradients[step][variable]. */
  gradients: number[][][];
}

export type OptimiserCheckResult =
  | { available: false; reason: string }
  | {
      available: true;
      activeBackend: string;
      /** Final weights after every step of torchAdam (weight decay 0.05) and of AdamW. */
      torchAdam: number[][];
      adamW: number[][];
      /** WebGPU only: programs and uploads of one torchAdam step once the moments exist. */
      steadyStep: { programs: number; uploads: number; fusedPrograms: number } | null;
      tensorsBefore: number;
      tensorsAfter: number;
    };
