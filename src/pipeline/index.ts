/**
 * The control node's data flow as RxJS operators and pure functions, one per file: transport
 * messages → validated samples → one state per control tick → (controller) → safety filter →
 * action message, and (state, action) ticks → transitions for the learner.
 */
export { fromTransport, type FromTransportOptions } from './fromTransport.js';
export { validateMessages, countUndecodable, DROP_REASONS, type SensorSpec, type Sample, type DropReason, type TopicCounts, type MessageCounters } from './validateMessages.js';
export { assembleState, type AssembleStateOptions, type ControlState } from './assembleState.js';
export {
  safetyFilter,
  newInterventionCounts,
  INTERVENTION_REASONS,
  type SafetyConfig,
  type SafetyFilterOptions,
  type ControlDecision,
  type SafeAction,
  type SafetyEvent,
  type InterventionReason,
  type InterventionCounts,
} from './safetyFilter.js';
export { TRANSITION_SKIP_REASONS, assembleTransitions, type RewardFn, type TerminatedFn, type TickRecord, type TransitionSkipReason } from './assembleTransitions.js';
export { taskStepFunctions } from './taskStepFunctions.js';
export { toActionMessage, type ActionSpec } from './toActionMessage.js';
export { defaultMessage, defaultFieldValue } from './defaultMessage.js';
export { messageDefinition, type MessageDefinition, type MessageFieldDefinition } from './messageDefinition.js';
export { resolveFieldPath, NUMERIC_ROS_TYPES, type ResolvedField } from './resolveFieldPath.js';
