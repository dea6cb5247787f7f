import type { Rng } from './rng.js';
import type { Box } from './spaces.js';

/**
 * A controller: observation in, action out. Planners, learned policies and ONNX policies all
 * implement it (mbrl-lib's `Agent`).
 */
export interface Agent {
  /** The action for `obs`; the returned array may be reused by the next call. */
  act(obs: Float64Array): Float64Array;
  /** Called at the start of each episode (planners drop their warm start here). */
  reset?(): void;
}

/** Uniform random actions within the action bounds. */
export class RandomAgent implements Agent {
  readonly #space: Box;
  readonly #rng: Rng;
  readonly #out: Float64Array;
  constructor(space: Box, rng: Rng) {
    this.#space = space;
    this.#rng = rng;
    this.#out = new Float64Array(space.dim);
  }
  act(): Float64Array {
    return this.#space.sample(this.#rng, this.#out);
  }
}

/** A constant action (zero by default), e.g. for checking passive dynamics. */
export class ConstantAgent implements Agent {
  readonly #action: Float64Array;
  constructor(action: ArrayLike<number>) {
    this.#action = Float64Array.from(action);
  }
  act(): Float64Array {
    return this.#action;
  }
}
