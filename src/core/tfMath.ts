import * as tf from '@tensorflow/tfjs';

/**
 * Builds a unary op from its forward function and a derivative expressed with differentiable ops
 * of the input, so that every order of gradient is recorded.
 */
function unaryHigherOrder(forward: (x: tf.Tensor) => tf.Tensor, derivative: (x: tf.Tensor) => tf.Tensor): (x: tf.Tensor) => tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([x]);
    return { value: forward(x), gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => tf.mul(dy as tf.Tensor, derivative(saved[0])) };
  });
  return (x: tf.Tensor) => op(x);
}

/**
 * `exp` whose gradients are right to every order.
 *
 * tfjs's own `exp`, `tanh`, `sigmoid` and `pow` compute their gradient from the op's saved
 * *output*, which the tape does not differentiate again: first-order gradients are right, but a
 * gradient of a gradient (MB-MPO's meta-gradient through the inner policy-gradient step) silently
 * misses the terms through that output (measured: the second derivative through exp's gradient
 * off by 42 %, tanh's by 44 %; test/core/tfMath.test.ts). These versions recompute the derivative
 * from the saved *input* with themselves, so every order is differentiated. Forward values are
 * tfjs's own.
 */
export const expHo: (x: tf.Tensor) => tf.Tensor = unaryHigherOrder(tf.exp, (x) => expHo(x));

/** `tanh` with gradients right to every order (see `expHo`): d tanh = 1 − tanh². */
export const tanhHo: (x: tf.Tensor) => tf.Tensor = unaryHigherOrder(tf.tanh, (x) => tf.sub(1, tf.square(tanhHo(x))));
