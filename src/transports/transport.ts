/**
 * The one interface every transport implements (`sim`, `mqtt`, `ros2`, `dds`): named topics with a
 * message type, incoming messages handed to a callback with their receive time, outgoing messages
 * published by topic. The pipeline (`src/pipeline/`) and the control node (`src/node/`) see only
 * this interface, so they are tested without ROS or a broker.
 *
 * Messages are plain objects shaped like the ROS 2 message of `type` (field names as in the .msg
 * files, see `messages.ts`); a transport that carries another encoding (MQTT JSON, CDR) converts at
 * its edge. Times are integer nanoseconds (`bigint`) on the wire and in these callbacks.
 */

/** ROS 2 QoS, reduced to what our transports honour. */
export interface QosProfile {
  /** `reliable` for commands (ROS default), `bestEffort` for high-rate sensors (sensor-data profile). */
  reliability: 'reliable' | 'bestEffort';
  /** `volatile` (ROS default) or `transientLocal` (latched, e.g. an e-stop state). */
  durability: 'volatile' | 'transientLocal';
  /** Keep-last depth. ROS default 10; sensor-data profile 5. */
  depth: number;
}

/** ROS 2's default profile: reliable, volatile, keep-last 10. */
export const QOS_DEFAULT: QosProfile = { reliability: 'reliable', durability: 'volatile', depth: 10 };
/** ROS 2's sensor-data profile: best effort, volatile, keep-last 5. */
export const QOS_SENSOR_DATA: QosProfile = { reliability: 'bestEffort', durability: 'volatile', depth: 5 };

/** A message as delivered to a subscriber. */
export interface IncomingMessage<T = unknown> {
  topic: string;
  /** The message type as written in ROS 2, e.g. `sensor_msgs/msg/JointState`. */
  type: string;
  /** The decoded message, shaped like the ROS 2 message (see `messages.ts`). */
  data: T;
  /** When the transport received it, nanoseconds on the transport's clock. */
  receivedNs: bigint;
}

/** Stops a subscription; calling it twice is harmless. */
export type Unsubscribe = () => void;

/** A transport: the node's only way in and out. */
export interface Transport {
  /** `sim`, `mqtt`, `ros2`, `dds`: for logs and diagnostics. */
  readonly kind: string;
  /** Opens connections; rejects with an error that names the endpoint when it cannot. */
  connect(): Promise<void>;
  /**
   * Calls `onMessage` for every message on `topic`. A message the transport cannot decode is
   * counted by the transport and reported through `onError`, never passed on.
   */
  subscribe<T = unknown>(
    topic: string,
    type: string,
    onMessage: (msg: IncomingMessage<T>) => void,
    options?: { qos?: QosProfile; onError?: (err: Error) => void },
  ): Unsubscribe;
  /** Publishes `data` (shaped like the ROS 2 message `type`) on `topic`. Never blocks on the network. */
  publish(topic: string, type: string, data: unknown, options?: { qos?: QosProfile }): void;
  /** The transport's clock, nanoseconds (simulated time for `sim`, wall time otherwise). */
  nowNs(): bigint;
  /** Closes every subscription and connection; idempotent. */
  close(): Promise<void>;
}
