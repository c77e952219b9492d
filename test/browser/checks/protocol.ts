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

/** What the page's GPU error check found: how a forced WebGPU validation error stopped `fit`. */
export type GpuErrorCheckResult =
  | { available: false; reason: string }
  | {
      available: true;
      /** Whether the backend-selection watch was on before training (watchGpuErrors true). */
      watched: boolean;
      /** The code, value and message of the error fit rejected with (null: it did not). */
      code: string | null;
      value: string | null;
      message: string | null;
      /** Steps fit reported before it stopped. */
      completedSteps: number;
      tensorsBefore: number;
      tensorsAfter: number;
    };

/** One product for the matMul checks: `activation(op(a)·op(b) + bias)`, row-major values. */
export interface MatMulCheckProduct {
  a: number[];
  aShape: number[];
  b: number[];
  bShape: number[];
  transposeA: boolean;
  transposeB: boolean;
  /** A bias of one value per output column, fused with the activation (tf.fused.matMul). */
  bias?: number[];
  activation?: 'linear' | 'relu';
}

/** The matMul checks: products, and the gradients of a small routed autoencoder's loss. */
export interface MatMulCheckInput {
  products: MatMulCheckProduct[];
  /** The autoencoder's input `[rows, 12]`, row-major. */
  autoencoderInput: number[];
}

export type MatMulCheckResult =
  | { available: false; reason: string }
  | {
      available: true;
      /** Whether selectBackend installed the library's WebGPU kernels. */
      kernelsInstalled: boolean;
      /** Each product's values (plain numbers: these are compared with a tolerance). */
      products: number[][];
      /** The loss and the gradient of every trainable variable, in the model's order. */
      loss: number;
      gradients: number[][];
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
