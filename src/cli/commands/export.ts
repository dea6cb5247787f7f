import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import ort from 'onnxruntime-node';
import { ValidationError } from '../../core/errors.js';
import { writeFileAtomic } from '../../data/atomicWrite.js';
import { envSpec, makeEnv } from '../../envs/registry.js';
import { exportMetadataProps, type ExportMetadata } from '../../export/exportMetadata.js';
import { decodeModelProto } from '../../export/onnxProto.js';
import { policyToOnnx } from '../../export/policyOnnx.js';
import { ensembleToOnnx } from '../../models/ensembleOnnx.js';
import { selectMembers } from '../../models/types.js';
import { OnnxPolicy } from '../../policies/onnxPolicy.js';
import { UsageError, stringFlag, type Command } from '../args.js';
import { loadCheckpointModels, type CheckpointModels } from '../checkpoint.js';

/** Observation names and bounds from an instance of the task, where one can be built (MuJoCo tasks need their MJCF). */
async function observationInfo(id: string, mjcfDir: string | undefined, log: (line: string) => void): Promise<Pick<ExportMetadata, 'obsNames' | 'obsLow' | 'obsHigh'>> {
  try {
    const env = await makeEnv(id, mjcfDir ? { mjcfDir } : {});
    try {
      return { ...(env.obsNames ? { obsNames: [...env.obsNames] } : {}), obsLow: env.observationSpace.low, obsHigh: env.observationSpace.high };
    } finally {
      env.close();
    }
  } catch (err) {
    log(`mbrl export: observation names and bounds not written (cannot build ${id}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)})`);
    return {};
  }
}

/** The export's metadata from the checkpoint and the task. */
async function metadataFor(m: CheckpointModels, what: 'policy' | 'ensemble', extra: Partial<ExportMetadata>, mjcfDir: string | undefined, log: (line: string) => void): Promise<Record<string, string>> {
  const id = m.config.env;
  let obsDim: number;
  let actDim: number;
  let actionLow: ArrayLike<number>;
  let actionHigh: ArrayLike<number>;
  if (what === 'policy') {
    const spec = m.policy!.spec;
    ({ obsDim, actDim, actionLow, actionHigh } = spec);
  } else {
    const spec = m.ensemble!.spec;
    ({ obsDim, actDim } = spec);
    const task = envSpec(id);
    actionLow = task.actLow;
    actionHigh = task.actHigh;
  }
  const obs = await observationInfo(id, mjcfDir, log);
  return exportMetadataProps({
    what,
    obsDim,
    actDim,
    actionLow,
    actionHigh,
    ...(obs.obsNames?.length === obsDim ? { obsNames: obs.obsNames } : {}),
    ...(obs.obsLow?.length === obsDim ? { obsLow: obs.obsLow, obsHigh: obs.obsHigh } : {}),
    envId: id,
    configKind: m.config.kind,
    envSteps: m.envSteps,
    ...extra,
  });
}

/** `mbrl export`: a checkpoint's policy (or dynamics ensemble) as an ONNX file for deployment. */
export const exportCommand: Command = {
  name: 'export',
  summary: "Export a checkpoint's policy (or dynamics ensemble) as an ONNX file with deployment metadata.",
  usage: 'mbrl export --checkpoint DIR --out FILE.onnx [--what policy|ensemble] [--stochastic] [--elites-only] [--json]',
  description:
    'policy: obs [batch, obsDim] → action [batch, actDim], with observation normalisation, the network, clipping or tanh\n' +
    'and scaling to the action bounds inside the graph (--stochastic adds the mean and log_std outputs).\n' +
    'ensemble: obs [K, batch, obsDim], act [K, batch, actDim] → per-member next_obs (and reward, variance).\n' +
    '--what defaults to policy when the checkpoint has one, else ensemble (a PETS run: its controller is a planner).\n' +
    'Metadata keys (mbrl.obs_dim, mbrl.action_low, mbrl.env_id, …) are listed in docs/onnx-export.md.',
  options: {
    checkpoint: { type: 'string', valueName: 'DIR', help: 'A run directory or its checkpoint/ directory.' },
    out: { type: 'string', valueName: 'FILE', help: 'The .onnx file to write (replaced atomically).' },
    what: { type: 'string', valueName: 'KIND', help: 'policy or ensemble (default: policy if the checkpoint has one).' },
    stochastic: { type: 'boolean', help: 'Policy: also output mean and log_std (normalised action units).' },
    'elites-only': { type: 'boolean', help: 'Ensemble: export only the elite members (the ones the PETS planner uses).' },
    'mjcf-dir': { type: 'string', valueName: 'DIR', help: 'Directory of Gymnasium MJCF files, for observation names (default: $MBRL_MJCF_DIR).' },
    json: { type: 'boolean', help: 'Print { out, what, bytes, metadata } as JSON.' },
  },
  async run(values, positionals) {
    if (positionals.length > 0) throw new UsageError(`mbrl export: unexpected argument "${positionals[0]}"`);
    const dir = stringFlag(values, 'checkpoint', 'a run or checkpoint directory');
    const out = stringFlag(values, 'out', 'the .onnx file to write');
    const whatFlag = values.what as string | undefined;
    if (whatFlag !== undefined && whatFlag !== 'policy' && whatFlag !== 'ensemble') throw new UsageError(`--what ${whatFlag}: expected policy or ensemble`);
    const m = await loadCheckpointModels(dir);
    const what = (whatFlag ?? (m.policy ? 'policy' : 'ensemble')) as 'policy' | 'ensemble';
    const log = (line: string): void => void process.stderr.write(`${line}\n`);
    const mjcfDir = values['mjcf-dir'] as string | undefined;
    if (values.stochastic && what !== 'policy') throw new UsageError('--stochastic applies to --what policy only');
    if (values['elites-only'] && what !== 'ensemble') throw new UsageError('--elites-only applies to --what ensemble only');

    let bytes: Uint8Array;
    let meta: Record<string, string>;
    if (what === 'policy') {
      if (!m.policy) {
        const why =
          m.config.kind === 'pets'
            ? 'a PETS checkpoint: its controller is a planner (CEM/MPPI/random shooting over the ensemble), not a network, so there is no policy to export; export the dynamics model with --what ensemble'
            : `the checkpoint (config.kind ${JSON.stringify(m.config.kind)}) holds no policy`;
        throw new ValidationError('mbrl export', '--what policy', `${m.dir} is ${why}`);
      }
      const stochastic = values.stochastic === true;
      meta = await metadataFor(m, 'policy', { squash: m.policy.spec.squash, stochastic }, mjcfDir, log);
      bytes = policyToOnnx(m.policy.spec, m.policy.weights, meta, { stochastic });
      // Load it back as a deployer would: the graph, its signature and its metadata must check out.
      const check = await OnnxPolicy.load(bytes, { obsDim: m.policy.spec.obsDim, actDim: m.policy.spec.actDim, envId: m.config.env, stochastic });
      check.dispose();
    } else {
      if (!m.ensemble) throw new ValidationError('mbrl export', '--what ensemble', `${m.dir} holds no trained dynamics ensemble yet${m.policy ? ' (it has a policy: --what policy)' : ''}`);
      const elitesOnly = values['elites-only'] === true;
      if (elitesOnly && m.elites === null) throw new ValidationError('mbrl export', '--elites-only', `${m.dir} records no elites`);
      const w = elitesOnly ? selectMembers(m.ensemble, m.elites!) : m.ensemble;
      meta = await metadataFor(m, 'ensemble', m.elites !== null && !elitesOnly ? { elites: m.elites } : {}, mjcfDir, log);
      bytes = ensembleToOnnx(w, meta);
      const session = await ort.InferenceSession.create(bytes);
      await session.release();
    }
    await mkdir(dirname(out), { recursive: true });
    await writeFileAtomic(out, bytes);
    if (values.json) {
      // The metadata as written (with mbrl.kind and mbrl.spec, which the graph builders add).
      const metadata = Object.fromEntries((decodeModelProto(bytes).metadata_props ?? []).map(({ key, value }) => [key, value]));
      process.stdout.write(`${JSON.stringify({ out, what, bytes: bytes.byteLength, metadata })}\n`);
    } else {
      process.stdout.write(`wrote ${out} (${what}, ${bytes.byteLength} bytes): obs ${meta['mbrl.obs_dim']} → action ${meta['mbrl.act_dim']}, ${m.config.env}, ${m.config.kind}, ${m.envSteps} env steps\n`);
    }
    return 0;
  },
};
