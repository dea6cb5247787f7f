import { Observable } from 'rxjs';
import type { IncomingMessage, QosProfile, Transport } from '../transports/transport.js';

/** Options of `fromTransport`. */
export interface FromTransportOptions {
  /** The subscription's QoS. Default: the transport's (ROS 2: reliable, keep-last 10). */
  qos?: QosProfile;
  /**
   * Told about messages the transport could not decode; they are never passed on and do not
   * end the stream (one bad message must not stop the controller).
   */
  onError?: (err: Error) => void;
}

/**
 * The messages of one topic as an observable: subscribes on the transport when subscribed to and
 * unsubscribes on teardown. Never completes by itself; the transport's `close` ends delivery.
 * @param type the ROS 2 message type, e.g. `sensor_msgs/msg/JointState`
 * @example
 * fromTransport(transport, '/joint_states', 'sensor_msgs/msg/JointState', { qos: QOS_SENSOR_DATA })
 *   .pipe(validateMessages(spec, counters, () => transport.nowNs()))
 */
export function fromTransport<T = unknown>(transport: Transport, topic: string, type: string, options: FromTransportOptions = {}): Observable<IncomingMessage<T>> {
  return new Observable<IncomingMessage<T>>((subscriber) => {
    const unsubscribe = transport.subscribe<T>(topic, type, (msg) => subscriber.next(msg), {
      ...(options.qos ? { qos: options.qos } : {}),
      ...(options.onError ? { onError: options.onError } : {}),
    });
    return () => unsubscribe();
  });
}
