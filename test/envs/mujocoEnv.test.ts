import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import type { PlantStep } from '../../src/envs/baseEnv.js';
import { MujocoEnv, createMujocoEnv, type MujocoContext, type MujocoModelSizes } from '../../src/envs/mujocoEnv.js';
import { HAVE_MJCF, MJCF_SKIP_REASON } from '../helpers.js';

const ID = 'Probe-v0';

/** A task on reacher.xml (nq 4, nv 4, nu 2) that looks up a body the model lacks, after `super()`. */
class MissingBody extends MujocoEnv {
  readonly id = ID;
  constructor(ctx: MujocoContext, sizes: MujocoModelSizes) {
    super(ctx, {}, { id: ID, mjcfFile: 'reacher.xml', sizes, frameSkip: 1, obsDim: 1, maxEpisodeSteps: 1 });
    this.bodyId('no_such_body');
  }
  protected resetPlant(): Float64Array {
    return new Float64Array(1);
  }
  protected stepPlant(): PlantStep {
    return { obs: new Float64Array(1), reward: 0, terminated: false, info: {} };
  }
}

describe.skipIf(!HAVE_MJCF)(`createMujocoEnv ${MJCF_SKIP_REASON}`, () => {
  it('frees the model and the data when the task constructor throws after super()', async () => {
    let seen: MujocoContext | undefined;
    const made = createMujocoEnv('reacher.xml', {}, (ctx) => {
      seen = ctx;
      return new MissingBody(ctx, { nq: 4, nv: 4, nu: 2 });
    });
    await expect(made).rejects.toThrow(/body "no_such_body" not found/);
    expect(seen?.data?.isDeleted()).toBe(true);
    expect(seen?.model.isDeleted()).toBe(true);
  });

  it('rejects a model of other sizes before allocating data, with a ValidationError naming the sizes and the file', async () => {
    let seen: MujocoContext | undefined;
    const made = createMujocoEnv('reacher.xml', {}, (ctx) => {
      seen = ctx;
      return new MissingBody(ctx, { nq: 4, nv: 4, nu: 2, nbody: 9 });
    });
    await expect(made).rejects.toThrow(ValidationError);
    await expect(made).rejects.toThrow(`${ID}: mjcf: expected a model with nq=4, nv=4, nu=2, nbody=9 (Gymnasium's reacher.xml), got nq=4, nv=4, nu=2, nbody=5`);
    expect(seen?.data).toBeUndefined();
    expect(seen?.model.isDeleted()).toBe(true);
  });
});
