/**
 * A small builder for ONNX graphs: inputs and outputs (with named dynamic dimensions), float32 and
 * int64 initializers, nodes with typed attributes, and model metadata, serialised to a
 * `ModelProto` through protobufjs (see `onnxProto.ts` for the schema and why protobufjs).
 *
 * The builder checks what ONNX runtimes would reject late and obscurely: duplicate value names,
 * node inputs that nothing produces yet (so the node list is always topologically sorted),
 * initializer sizes that disagree with their dims, and outputs that no node produces.
 *
 * @example
 * const g = new OnnxGraphBuilder({ graphName: 'affine' });
 * const x = g.addInput('x', 'float32', ['batch', 3]);
 * const w = g.addInitializer('w', new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
 * const b = g.addInitializer('b', new Float32Array([0.5, -0.5]), [2]);
 * g.addNode('Add', [g.addNode('MatMul', [x, w])[0], b], { outputs: ['y'] });
 * g.addOutput('y', 'float32', ['batch', 2]);
 * g.setMetadata('kind', 'affine');
 * const bytes = g.encodeModel(); // load with ort.InferenceSession.create(bytes)
 */
import {
  encodeModelProto,
  ONNX_IR_VERSION,
  ONNX_OPSET_VERSION,
  OnnxAttributeType,
  OnnxDataType,
} from './onnxProto.js';
import type { AttributeProto, NodeProto, TensorProto, ValueInfoProto } from './onnxProto.js';

/** Element types the builder writes. */
export type OnnxElemType = 'float32' | 'int64';

/** A dimension: a fixed size, or a name for a dynamic size shared by every tensor that uses it. */
export type OnnxDim = number | string;

/** A typed node attribute (ONNX distinguishes `1` the INT from `1.0` the FLOAT, so we must too). */
export type OnnxAttribute =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: readonly number[] }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'strings'; value: readonly string[] };

/** Constructors for `OnnxAttribute`s: `{ axis: attr.int(2), alpha: attr.float(0.5) }`. */
export const attr = {
  int: (value: number): OnnxAttribute => ({ type: 'int', value }),
  float: (value: number): OnnxAttribute => ({ type: 'float', value }),
  string: (value: string): OnnxAttribute => ({ type: 'string', value }),
  ints: (value: readonly number[]): OnnxAttribute => ({ type: 'ints', value }),
  floats: (value: readonly number[]): OnnxAttribute => ({ type: 'floats', value }),
  strings: (value: readonly string[]): OnnxAttribute => ({ type: 'strings', value }),
};

/** Options of `OnnxGraphBuilder`. */
export interface OnnxGraphBuilderOptions {
  /** Graph name stored in the file. @default 'mbrl-node' */
  graphName?: string;
  /** Default-domain opset version. @default 17 */
  opsetVersion?: number;
  /** `producer_name`. @default 'mbrl-node' */
  producerName?: string;
  /** `producer_version`, e.g. the package version. @default '0.1.0' */
  producerVersion?: string;
  /** `doc_string` of the model. @default '' */
  docString?: string;
}

/** Options of `OnnxGraphBuilder.addNode`. */
export interface OnnxNodeOptions {
  /** Output names, or how many outputs to name automatically. @default 1 */
  outputs?: number | readonly string[];
  attributes?: Readonly<Record<string, OnnxAttribute>>;
  /** Node name. @default `<opType>_<index>` */
  name?: string;
  /** Operator domain. @default '' (the ONNX default domain) */
  domain?: string;
}

/** mbrl-node's package version, written as `producer_version` unless overridden. */
export const MBRL_NODE_VERSION = '0.1.0';

const ELEM_TYPE_CODE: Record<OnnxElemType, number> = {
  float32: OnnxDataType.FLOAT,
  int64: OnnxDataType.INT64,
};

const UTF8 = new TextEncoder();

/** Builds one ONNX graph and serialises it; see the file comment for an example. */
export class OnnxGraphBuilder {
  readonly #options: Required<OnnxGraphBuilderOptions>;
  readonly #inputs: ValueInfoProto[] = [];
  readonly #outputs: ValueInfoProto[] = [];
  readonly #initializers: TensorProto[] = [];
  readonly #nodes: NodeProto[] = [];
  readonly #metadata = new Map<string, string>();
  /** Every value name defined so far (inputs, initializers, node outputs). */
  readonly #values = new Set<string>();
  #autoName = 0;

  constructor(options: OnnxGraphBuilderOptions = {}) {
    this.#options = {
      graphName: options.graphName ?? 'mbrl-node',
      opsetVersion: options.opsetVersion ?? ONNX_OPSET_VERSION,
      producerName: options.producerName ?? 'mbrl-node',
      producerVersion: options.producerVersion ?? MBRL_NODE_VERSION,
      docString: options.docString ?? '',
    };
    if (!Number.isInteger(this.#options.opsetVersion) || this.#options.opsetVersion < 13) {
      throw new RangeError(`OnnxGraphBuilder: opsetVersion: expected an integer ≥ 13, got ${this.#options.opsetVersion}`);
    }
  }

  /** Declares a graph input; string dims are dynamic (`'batch'`). Returns its name. */
  addInput(name: string, elemType: OnnxElemType, dims: readonly OnnxDim[]): string {
    this.#define(name, 'input');
    this.#inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** Declares a graph output; a node must already produce `name`. Returns its name. */
  addOutput(name: string, elemType: OnnxElemType, dims: readonly OnnxDim[]): string {
    if (!this.#values.has(name)) {
      throw new Error(`OnnxGraphBuilder.addOutput: no input, initializer or node produces "${name}"`);
    }
    if (this.#outputs.some((o) => o.name === name)) {
      throw new Error(`OnnxGraphBuilder.addOutput: "${name}" is already an output`);
    }
    this.#outputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /**
   * Adds a constant tensor. `Float32Array` gives a float32 tensor; `BigInt64Array` or an array of
   * safe integers gives an int64 tensor (shapes, axes, split sizes). Returns its name.
   * @param dims its shape; `[]` for a scalar. The element count must match.
   */
  addInitializer(name: string, data: Float32Array | BigInt64Array | readonly number[], dims: readonly number[]): string {
    const count = dims.reduce((a, d) => {
      if (!Number.isInteger(d) || d < 0) {
        throw new RangeError(`OnnxGraphBuilder.addInitializer("${name}"): dims: expected non-negative integers, got [${dims.join(', ')}]`);
      }
      return a * d;
    }, 1);
    if (data.length !== count) {
      throw new RangeError(
        `OnnxGraphBuilder.addInitializer("${name}"): dims [${dims.join(', ')}] hold ${count} elements, got ${data.length}`,
      );
    }
    this.#define(name, 'initializer');
    const float = data instanceof Float32Array;
    const bytes = new Uint8Array(count * (float ? 4 : 8));
    const view = new DataView(bytes.buffer);
    // raw_data is little-endian by the spec, whatever the host's byte order.
    for (let i = 0; i < count; i++) {
      if (float) view.setFloat32(i * 4, data[i], true);
      else {
        const v = data[i];
        if (typeof v === 'number' && !Number.isSafeInteger(v)) {
          throw new RangeError(`OnnxGraphBuilder.addInitializer("${name}"): int64 data[${i}]: expected a safe integer, got ${v}`);
        }
        view.setBigInt64(i * 8, BigInt(v), true);
      }
    }
    this.#initializers.push({
      name,
      dims: [...dims],
      data_type: float ? OnnxDataType.FLOAT : OnnxDataType.INT64,
      raw_data: bytes,
    });
    return name;
  }

  /**
   * Appends a node. Every input must already exist (`''` marks an omitted optional input).
   * @returns the node's output names (generated as `<opType>_<n>` unless given)
   */
  addNode(opType: string, inputs: readonly string[], options: OnnxNodeOptions = {}): string[] {
    const index = this.#nodes.length;
    for (const input of inputs) {
      if (input !== '' && !this.#values.has(input)) {
        throw new Error(`OnnxGraphBuilder.addNode(${opType}): input "${input}" is not produced by any earlier input, initializer or node`);
      }
    }
    const outputSpec = options.outputs ?? 1;
    const outputs =
      typeof outputSpec === 'number'
        ? Array.from({ length: outputSpec }, () => this.#freshName(opType))
        : [...outputSpec];
    for (const output of outputs) this.#define(output, `output of ${opType}`);
    const attributes = Object.entries(options.attributes ?? {}).map(([name, a]) => attributeProto(name, a));
    this.#nodes.push({
      input: [...inputs],
      output: outputs,
      name: options.name ?? `${opType}_${index}`,
      op_type: opType,
      ...(options.domain === undefined || options.domain === '' ? {} : { domain: options.domain }),
      attribute: attributes,
    });
    return outputs;
  }

  /** Shorthand for a single-output node: returns the output's name (`output` if given). */
  op(opType: string, inputs: readonly string[], attributes?: Readonly<Record<string, OnnxAttribute>>, output?: string): string {
    return this.addNode(opType, inputs, { attributes, outputs: output === undefined ? 1 : [output] })[0];
  }

  /** Sets one `metadata_props` entry (keys are unique; a second call replaces the value). */
  setMetadata(key: string, value: string): this {
    this.#metadata.set(key, value);
    return this;
  }

  /** Serialises the model (IR version 8, the configured opset) to `.onnx` bytes. */
  encodeModel(): Uint8Array {
    if (this.#outputs.length === 0) throw new Error('OnnxGraphBuilder.encodeModel: the graph has no outputs');
    const o = this.#options;
    return encodeModelProto({
      ir_version: ONNX_IR_VERSION,
      opset_import: [{ version: o.opsetVersion }],
      producer_name: o.producerName,
      producer_version: o.producerVersion,
      ...(o.docString === '' ? {} : { doc_string: o.docString }),
      graph: {
        name: o.graphName,
        node: this.#nodes,
        initializer: this.#initializers,
        input: this.#inputs,
        output: this.#outputs,
      },
      metadata_props: [...this.#metadata].map(([key, value]) => ({ key, value })),
    });
  }

  #define(name: string, what: string): void {
    if (name === '') throw new Error(`OnnxGraphBuilder: a ${what} needs a non-empty name`);
    if (this.#values.has(name)) throw new Error(`OnnxGraphBuilder: "${name}" (${what}) is already defined`);
    this.#values.add(name);
  }

  #freshName(opType: string): string {
    let name: string;
    do name = `${opType}_${this.#autoName++}`;
    while (this.#values.has(name));
    return name;
  }
}

function valueInfo(name: string, elemType: OnnxElemType, dims: readonly OnnxDim[]): ValueInfoProto {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: ELEM_TYPE_CODE[elemType],
        shape: {
          dim: dims.map((d) => {
            if (typeof d === 'string') return { dim_param: d };
            if (!Number.isInteger(d) || d < 0) {
              throw new RangeError(`OnnxGraphBuilder: "${name}": dims: expected non-negative integers or names, got ${d}`);
            }
            return { dim_value: d };
          }),
        },
      },
    },
  };
}

function attributeProto(name: string, a: OnnxAttribute): AttributeProto {
  switch (a.type) {
    case 'int':
      return { name, type: OnnxAttributeType.INT, i: checkInt(name, a.value) };
    case 'float':
      return { name, type: OnnxAttributeType.FLOAT, f: a.value };
    case 'string':
      return { name, type: OnnxAttributeType.STRING, s: UTF8.encode(a.value) };
    case 'ints':
      return { name, type: OnnxAttributeType.INTS, ints: a.value.map((v) => checkInt(name, v)) };
    case 'floats':
      return { name, type: OnnxAttributeType.FLOATS, floats: [...a.value] };
    case 'strings':
      return { name, type: OnnxAttributeType.STRINGS, strings: a.value.map((s) => UTF8.encode(s)) };
  }
}

function checkInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`OnnxGraphBuilder: attribute ${name}: expected a safe integer, got ${v}`);
  return v;
}
