/**
 * mbrl-node's public API, exported by name. Layers, in data-flow order:
 * core → envs → data (→ models → planning → policies → algorithms → export → pipeline →
 * transports → node, added by later issues).
 */
export { Rng, type RngState } from './core/rng.js';
export { Box } from './core/spaces.js';
export { ValidationError, checkFiniteVector } from './core/errors.js';
export {
  NOMINAL_PHYSICS,
  type Env,
  type EnvInfo,
  type EnvOptions,
  type PhysicsParams,
  type ResetOptions,
  type ResetResult,
  type StepResult,
  type TaskFunctions,
} from './core/env.js';
export { RandomAgent, ConstantAgent, type Agent } from './core/agent.js';
export { initBackend, BACKEND_PREFERENCE, type BackendName, type InitBackendOptions } from './core/backend.js';

export { BaseEnv, resolvePhysics, type PlantStep, type PhysicsSupport } from './envs/baseEnv.js';
export { MujocoEnv, loadMujocoContext, type MujocoEnvOptions } from './envs/mujocoEnv.js';
export { loadMujoco, resolveMjcf, MjcfNotFoundError, type MjcfLocation } from './envs/mujocoRuntime.js';
export { ENV_SPECS, ENV_IDS, envSpec, makeEnv } from './envs/registry.js';
export type { EnvSpec, MakeEnvOptions } from './envs/spec.js';
export { VecEnv, type VecStepResult } from './envs/vecEnv.js';
export { runEpisodes, type EpisodeStats, type RunEpisodesOptions } from './envs/runEpisodes.js';
export { Pendulum, pendulumTask, angleNormalize } from './envs/pendulum.js';
export { MountainCarContinuous, mountainCarContinuousTask } from './envs/mountainCarContinuous.js';
export { PointGoal2D, pointGoal2DTask } from './envs/pointGoal2D.js';
export { InvertedPendulum, invertedPendulumTask } from './envs/invertedPendulum.js';
export { HalfCheetah, halfCheetahTask } from './envs/halfCheetah.js';
export { Hopper, hopperTask } from './envs/hopper.js';
export { Walker2d, walker2dTask } from './envs/walker2d.js';
export { Swimmer, swimmerTask } from './envs/swimmer.js';
export { Reacher, reacherTask } from './envs/reacher.js';
export { Ant, antTask } from './envs/ant.js';

export * from './data/index.js';

export { runEpisodesAsync, type AsyncAgent } from './envs/runEpisodes.js';

export {
  selectMembers,
  outDimOf,
  type EnsembleSpec,
  type EnsembleWeights,
  type EnsemblePredictor,
} from './models/types.js';
export { DynamicsEnsemble, ENSEMBLE_DEFAULTS, ENSEMBLE_PRESETS, makeEnsembleConfig, type EnsembleConfig } from './models/ensemble.js';
export {
  fitEnsemble,
  ENSEMBLE_FIT_DEFAULTS,
  makeEnsembleFitConfig,
  EnsembleFitError,
  type EnsembleFitConfig,
  type EnsembleFitData,
  type EnsembleFitResult,
} from './models/trainer.js';
export { OrtEnsemblePredictor, ensembleToOnnx, measureGemmPeak } from './models/ensembleOnnx.js';
export { referenceForward, randomEnsembleWeights } from './models/referenceForward.js';
export { encodeEnsembleWeights, decodeEnsembleWeights, WeightsFormatError } from './models/weightsCodec.js';
export { ModelEnv, aggregateParticles, type ModelEnvOptions, type ModelStepResult, type Propagation } from './models/modelEnv.js';

export { asPlanningAgent, shiftPlan, type PlanningAgent, type TrajectoryOptimizer, type TrajectoryObjective } from './planning/planningAgent.js';
export { CEM_DEFAULTS, CemOptimizer, cemUpdate, makeCemConfig, sampleTruncatedNormal, type CemConfig } from './planning/cem.js';
export { MPPI_DEFAULTS, MppiOptimizer, makeMppiConfig, mppiWeights, type MppiConfig } from './planning/mppi.js';
export { RANDOM_SHOOTING_DEFAULTS, RandomShootingOptimizer, makeRandomShootingConfig, type RandomShootingConfig } from './planning/randomShooting.js';
export { TrajectoryOptimizerAgent, createModelPlanningAgent, makeTrajectoryOptimizer, type PlannerConfig } from './planning/trajectoryOptimizerAgent.js';

export {
  trainPets,
  makePetsConfig,
  makePetsAgent,
  PETS_DEFAULTS,
  PETS_ENV_OVERRIDES,
  type PetsConfig,
  type PetsOverrides,
  type PetsState,
  type PetsEpisodeMetrics,
  type PetsHooks,
} from './algorithms/mbrl.js';
export { branchedRollouts, mopoPenalty, type BranchedRolloutOptions, type ModelTransitions, type PenaltyKind } from './models/branchedRollouts.js';

export {
  GaussianMlpPolicy,
  makePolicySpec,
  policyForward,
  referencePolicyForward,
  POLICY_DEFAULTS,
  type GaussianMlpPolicySpec,
  type PolicyWeights,
  type PolicySquash,
  type PolicyStdMode,
} from './policies/gaussianMlpPolicy.js';
export { gaussianLogProb, gaussianKl, gaussianEntropy, tanhLogDetJacobian } from './policies/diagGaussian.js';
export { LinearFeatureBaseline } from './policies/linearFeatureBaseline.js';
export { MlpValueFunction } from './policies/mlpValueFunction.js';
export type { Baseline } from './policies/baseline.js';
export { expHo, tanhHo } from './core/tfMath.js';

export {
  collectRollouts,
  EnvRolloutSource,
  makeEnvCopies,
  gae,
  discountedCumsum,
  type SampleBatch,
  type RolloutSource,
  type ActionSampler,
} from './algorithms/policyGradient.js';
export {
  trainTrpo,
  trpoStep,
  trustRegionStep,
  conjugateGradient,
  fisherVectorProduct,
  makeTrpoConfig,
  TRPO_DEFAULTS,
  TRUST_REGION_DEFAULTS,
  type TrpoConfig,
  type TrustRegionConfig,
} from './algorithms/trpo.js';
export { trainPpo, makePpoConfig, ppoLoss, PPO_DEFAULTS, type PpoConfig } from './algorithms/ppo.js';
export { ModelRolloutSource, meanActionSampler } from './algorithms/modelRollouts.js';
export {
  trainMeTrpo,
  makeMeTrpoConfig,
  meTrpoValidation,
  ME_TRPO_DEFAULTS,
  ME_TRPO_ENV_OVERRIDES,
  type MeTrpoConfig,
  type MeTrpoState,
  type MeTrpoIterationMetrics,
} from './algorithms/meTrpo.js';
export {
  trainMbMpo,
  makeMbMpoConfig,
  metaStep,
  adaptOnRealSystem,
  MB_MPO_DEFAULTS,
  MB_MPO_ENV_OVERRIDES,
  type MbMpoConfig,
  type MbMpoState,
  type MbMpoIterationMetrics,
} from './algorithms/mbMpo.js';
export { adaptParams, metaObjective, metaKl, innerGradient, type MetaTask, type MetaGradientMode } from './algorithms/metaGradient.js';
export {
  SacAgent,
  trainSac,
  makeSacConfig,
  softQTarget,
  SAC_DEFAULTS,
  SAC_ENV_OVERRIDES,
  type SacConfig,
  type SacAgentConfig,
  type SacBatch,
  type SacAgentState,
} from './algorithms/sac.js';
export { trainMopo, makeMopoConfig, mixedBatch, MOPO_DEFAULTS, MOPO_PAPER_SETTINGS, type MopoConfig, type OfflineData, type MopoEpochMetrics } from './algorithms/mopo.js';
export { trainBc, makeBcConfig, bcLoss, bcPolicySpec, observationMoments, BC_DEFAULTS, type BcConfig, type BcState, type BcEpochMetrics, type BcHooks, type BcResult } from './algorithms/bc.js';
export { OnnxGraphBuilder, MBRL_NODE_VERSION } from './export/onnxWriter.js';
export { policyToOnnx, float32Inward, POLICY_ONNX_NAMES, POLICY_BATCH_DIM, type PolicyToOnnxOptions } from './export/policyOnnx.js';
export { exportMetadataProps, readExportMetadata, EXPORT_METADATA_VERSION, type ExportMetadata, type ReadExportMetadata } from './export/exportMetadata.js';
export { OnnxPolicy, type OnnxPolicyExpected, type OnnxPolicyOptions } from './policies/onnxPolicy.js';
export { encodePolicyWeights, decodePolicyWeights, type PolicyWeightsHeader } from './policies/policyWeightsCodec.js';
export {
  trainModelGradient,
  makeModelGradientConfig,
  modelGradientLoss,
  modelGradientPhase,
  realPolicyGradient,
  segmentsFromBatch,
  ensembleDynamics,
  MODEL_GRADIENT_DEFAULTS,
  MODEL_GRADIENT_ENV_OVERRIDES,
  type ModelGradientConfig,
  type ModelGradientState,
  type ModelGradientIterationMetrics,
  type DifferentiableDynamics,
  type GradientMatchingProblem,
} from './algorithms/modelGradient.js';
export { DIFFERENTIABLE_REWARDS } from './algorithms/modelGradientRewards.js';
export { ResumableEnvSource, type TrpoState } from './algorithms/trpo.js';
export { adamSnapshot, restoreAdam, type PpoState } from './algorithms/ppo.js';
export { stateBoundsOf } from './algorithms/modelRollouts.js';
export * from './pipeline/index.js';
export { loadNodeConfig, parseNodeConfig, nodeConfigToJson, NODE_CONFIG_DEFAULTS, type NodeConfig } from './node/config.js';
export { QOS_DEFAULT, QOS_SENSOR_DATA, type Transport, type IncomingMessage, type QosProfile, type Unsubscribe } from './transports/transport.js';
export type * from './transports/messages.js';
export { timeFromNs, nsFromTime } from './transports/messages.js';
export { LoopbackTransport } from './transports/loopback.js';
export { DdsTransport, CYCLONE_LOCALHOST_CONFIG, type DdsTransportOptions, type DdsTransportStats } from './transports/dds/ddsTransport.js';
export { DdsError } from './transports/dds/cyclone.js';
export { rosCodec, ddsTopicName, ddsTypeName, DDS_NODE_TYPES } from './transports/dds/rosCodec.js';
export { buildRawCdrShim } from './transports/dds/rawCdrShim.js';
export { SimTransport } from './transports/sim.js';
export { MqttTransport } from './transports/mqtt.js';
export { Learner, makeLearnerConfig, LEARNER_DEFAULTS, type LearnerConfig, type LearnerPolicy } from './node/learner.js';
export { policyGate, imaginedReturns, type LearnerPolicyConfig } from './node/learnerPolicy.js';
export { BufferSegments } from './node/bufferSegments.js';
export { trainMbpo, makeMbpoConfig, mixedReplayBatch, rolloutLengthAt, modelBufferCapacity, MBPO_DEFAULTS, MBPO_ENV_OVERRIDES, type MbpoConfig, type MbpoOverrides, type MbpoState, type MbpoEpisodeMetrics, type MbpoHooks, type MbpoResult, type RolloutSchedule } from './algorithms/mbpo.js';
export { runAdaptation, makeAdaptConfig, ADAPT_DEFAULTS, ISSUE_10_PHYSICS, safeActionFor, rollbackFloor, shouldRollBack, SafeRealSystem, nominalReturn, type AdaptConfig } from './algorithms/adapt.js';
