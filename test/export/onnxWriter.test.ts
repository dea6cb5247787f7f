import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeModelProto, ONNX_IR_VERSION, ONNX_OPSET_VERSION } from '../../src/export/onnxProto.js';
import { attr, MBRL_NODE_VERSION, OnnxGraphBuilder } from '../../src/export/onnxWriter.js';
import { PYTHON_WITH_ONNX } from '../helpers.js';


/** Runs `onnx.checker.check_model(..., full_check=True)` (which includes shape inference) on `bytes`. */
function pythonOnnxCheck(bytes: Uint8Array): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mbrl-onnx-'));
  try {
    const file = join(dir, 'model.onnx');
    writeFileSync(file, bytes);
    const script = 'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")';
    const r = spawnSync(PYTHON_WITH_ONNX ?? 'python3', ['-c', script, file], { encoding: 'utf8' });
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** y = x · W + b with W = [[1, 2], [3, 4], [5, 6]] and b = [0.5, −0.5], for any number of rows. */
function affineModel(): Uint8Array {
  const g = new OnnxGraphBuilder({ graphName: 'affine' });
  const x = g.addInput('x', 'float32', ['batch', 3]);
  const w = g.addInitializer('w', new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
  const b = g.addInitializer('b', new Float32Array([0.5, -0.5]), [2]);
  g.op('Add', [g.op('MatMul', [x, w]), b], undefined, 'y');
  g.addOutput('y', 'float32', ['batch', 2]);
  g.setMetadata('mbrl.kind', 'test-affine').setMetadata('note', 'grüße, ünïcode ✓');
  return g.encodeModel();
}

const sessions: ort.InferenceSession[] = [];
async function open(bytes: Uint8Array): Promise<ort.InferenceSession> {
  const s = await ort.InferenceSession.create(bytes);
  sessions.push(s);
  return s;
}
afterAll(async () => {
  for (const s of sessions) await s.release();
});

describe('OnnxGraphBuilder', () => {
  it('writes a model that onnxruntime loads and runs: a hand-computed MatMul + Add', async () => {
    const session = await open(affineModel());
    expect(session.inputNames).toEqual(['x']);
    expect(session.outputNames).toEqual(['y']);
    const x = new Float32Array([1, 0, 0, 0, 1, 2]);
    const { y } = await session.run({ x: new ort.Tensor('float32', x, [2, 3]) });
    // [1,0,0]·W + b = [1, 2] + b; [0,1,2]·W + b = [3 + 10, 4 + 12] + b
    expect(Array.from(y.data as Float32Array)).toEqual([1.5, 1.5, 13.5, 15.5]);
    expect(y.dims).toEqual([2, 2]);
  });

  it.each([1, 7, 300])('keeps the batch dimension dynamic: B = %i', async (B) => {
    const session = await open(affineModel());
    expect(session.inputMetadata[0]).toMatchObject({ name: 'x', shape: ['batch', 3] });
    const x = new Float32Array(B * 3);
    for (let r = 0; r < B; r++) x.set([r, 1, -1], r * 3);
    const { y } = await session.run({ x: new ort.Tensor('float32', x, [B, 3]) });
    const out = y.data as Float32Array;
    expect(y.dims).toEqual([B, 2]);
    // [r, 1, −1]·W + b = [r + 3 − 5 + 0.5, 2r + 4 − 6 − 0.5]
    for (let r = 0; r < B; r++) {
      expect(out[r * 2]).toBe(r - 1.5);
      expect(out[r * 2 + 1]).toBe(2 * r - 2.5);
    }
  });

  it('round-trips metadata_props, producer, IR and opset versions, shapes and initializer bytes', () => {
    const model = decodeModelProto(affineModel());
    expect(model.ir_version).toBe(ONNX_IR_VERSION);
    expect(ONNX_IR_VERSION).toBe(8);
    expect(model.opset_import).toEqual([{ version: ONNX_OPSET_VERSION }]);
    expect(ONNX_OPSET_VERSION).toBe(17);
    expect(model.producer_name).toBe('mbrl-node');
    expect(model.producer_version).toBe(MBRL_NODE_VERSION);
    expect(model.metadata_props).toEqual([
      { key: 'mbrl.kind', value: 'test-affine' },
      { key: 'note', value: 'grüße, ünïcode ✓' },
    ]);
    expect(model.graph.name).toBe('affine');
    expect(model.graph.input[0].type?.tensor_type?.shape?.dim).toEqual([{ dim_param: 'batch' }, { dim_value: 3 }]);
    expect(model.graph.node.map((n) => n.op_type)).toEqual(['MatMul', 'Add']);
    const w = model.graph.initializer.find((t) => t.name === 'w')!;
    expect(w.dims).toEqual([3, 2]);
    expect(w.data_type).toBe(1);
    const raw = w.raw_data!;
    const floats = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    expect(Array.from({ length: 6 }, (_, i) => floats.getFloat32(i * 4, true))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('replaces a metadata value set twice (keys stay unique)', () => {
    const g = new OnnxGraphBuilder();
    const x = g.addInput('x', 'float32', [1]);
    g.op('Identity', [x], undefined, 'y');
    g.addOutput('y', 'float32', [1]);
    g.setMetadata('seed', '1').setMetadata('seed', '2');
    expect(decodeModelProto(g.encodeModel()).metadata_props).toEqual([{ key: 'seed', value: '2' }]);
  });

  it('writes typed attributes and int64 initializers that onnxruntime interprets as intended', async () => {
    // x [batch, 2, 3] → Transpose(perm [0, 2, 1]) → Reshape([-1, 6]) → LeakyRelu(alpha 0.25) → Concat(axis 1) with itself
    const g = new OnnxGraphBuilder();
    const x = g.addInput('x', 'float32', ['batch', 2, 3]);
    const t = g.op('Transpose', [x], { perm: attr.ints([0, 2, 1]) });
    const r = g.op('Reshape', [t, g.addInitializer('shape', [-1, 6], [2])]);
    const l = g.op('LeakyRelu', [r], { alpha: attr.float(0.25) });
    g.op('Concat', [l, l], { axis: attr.int(1) }, 'y');
    g.addOutput('y', 'float32', ['batch', 12]);
    const bytes = g.encodeModel();
    const node = decodeModelProto(bytes).graph.node.find((n) => n.op_type === 'LeakyRelu')!;
    expect(node.attribute).toHaveLength(1);
    expect(node.attribute![0]).toMatchObject({ name: 'alpha', type: 1, f: 0.25 });
    const session = await open(bytes);
    const { y } = await session.run({ x: new ort.Tensor('float32', new Float32Array([1, -2, 3, -4, 5, -8]), [1, 2, 3]) });
    // transpose of [[1, −2, 3], [−4, 5, −8]] is [[1, −4], [−2, 5], [3, −8]]; negatives × 0.25
    const half = [1, -1, -0.5, 5, 3, -2];
    expect(Array.from(y.data as Float32Array)).toEqual([...half, ...half]);
  });

  it('encodes string and list attributes (read back with the same schema)', () => {
    const g = new OnnxGraphBuilder();
    const x = g.addInput('x', 'float32', [2]);
    g.addNode('Identity', [x], {
      outputs: ['y'],
      attributes: { s: attr.string('é'), fs: attr.floats([0.5, -1]), ss: attr.strings(['a', 'bc']) },
    });
    g.addOutput('y', 'float32', [2]);
    const [a, b, c] = decodeModelProto(g.encodeModel()).graph.node[0].attribute!;
    expect(new TextDecoder().decode(a.s)).toBe('é');
    expect(a.type).toBe(3);
    expect(b).toMatchObject({ name: 'fs', type: 6, floats: [0.5, -1] });
    expect(c.strings!.map((s) => new TextDecoder().decode(s))).toEqual(['a', 'bc']);
  });

  it('writes zero-valued attributes explicitly (the ONNX checker requires the value field present)', async () => {
    const g = new OnnxGraphBuilder();
    const x = g.addInput('x', 'float32', ['batch', 2]);
    g.op('Concat', [x, x], { axis: attr.int(0) }, 'y');
    g.addOutput('y', 'float32', ['batch2', 2]);
    const bytes = g.encodeModel();
    const [axis] = decodeModelProto(bytes).graph.node[0].attribute!;
    expect(axis).toHaveProperty('i', 0);
    const session = await open(bytes);
    const { y } = await session.run({ x: new ort.Tensor('float32', new Float32Array([1, 2]), [1, 2]) });
    expect(y.dims).toEqual([2, 2]);
  });

  it('rejects malformed graphs when they are built, naming the problem', () => {
    const g = new OnnxGraphBuilder();
    const x = g.addInput('x', 'float32', ['batch', 2]);
    expect(() => g.op('Relu', ['nope'])).toThrow(/input "nope" is not produced/);
    expect(() => g.addInput('x', 'float32', [1])).toThrow(/"x" \(input\) is already defined/);
    expect(() => g.addInitializer('w', new Float32Array(5), [2, 3])).toThrow(/dims \[2, 3\] hold 6 elements, got 5/);
    expect(() => g.addInitializer('i', [1.5], [1])).toThrow(/expected a safe integer, got 1.5/);
    expect(() => g.addOutput('y', 'float32', [1])).toThrow(/no input, initializer or node produces "y"/);
    expect(() => g.addInput('z', 'float32', [-1])).toThrow(/non-negative integers or names/);
    expect(() => g.encodeModel()).toThrow(/no outputs/);
    g.op('Relu', [x], undefined, 'y');
    expect(() => g.op('Relu', [x], undefined, 'y')).toThrow(/"y" \(output of Relu\) is already defined/);
    expect(() => new OnnxGraphBuilder({ opsetVersion: 11 })).toThrow(/opsetVersion: expected an integer ≥ 13, got 11/);
  });

  it.skipIf(PYTHON_WITH_ONNX === undefined)('passes the Python onnx checker (full_check, with shape inference)', () => {
    const result = pythonOnnxCheck(affineModel());
    expect(result.output).toContain('ok');
    expect(result.ok).toBe(true);
  });
});
