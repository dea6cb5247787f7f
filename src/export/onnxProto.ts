/**
 * The ONNX protobuf schema (the subset of `onnx.proto` that mbrl-node writes and reads back), and
 * `ModelProto` encode/decode through protobufjs.
 *
 * Why protobufjs with the schema in code, rather than the `onnx-proto` npm package:
 * - `onnx-proto` (last release 8.0.1, Dec 2024) is generated from an old `onnx.proto` and pins
 *   protobufjs `^6.11` (a major line that no longer gets fixes); its generated statics would pull a
 *   second protobufjs into the tree and we could not see which IR fields it covers without reading
 *   the generated code.
 * - protobufjs 8 (the maintained major; the maintainer describes 7 → 8 as a near drop-in, and we use
 *   only the reflection API that both share) encodes from a schema we can read in one screen.
 *   Field numbers are stable across ONNX releases (protobuf forbids renumbering), so a subset with
 *   the spec's numbers is wire-compatible with every reader: onnxruntime, the Python `onnx` checker,
 *   Netron. The numbers below were checked against `onnx/onnx.proto3` in the ONNX repository (generated from
 *   the same `onnx.in.proto` as the canonical proto2 `onnx.proto`).
 *
 * Field names are kept in the spec's snake_case (`keepCase`), so each line can be checked against
 * the spec by eye. Fields we never write (sparse tensors, training info, functions, segments,
 * external data) are left out; a decoder skips unknown fields, so reading a richer file still works.
 *
 * @see https://github.com/onnx/onnx/blob/main/onnx/onnx.proto
 * @see https://github.com/onnx/onnx/blob/main/docs/IR.md
 */
import protobuf from 'protobufjs';

/** IR version written by mbrl-node: 8 (ONNX 1.10+), loaded by onnxruntime ≥ 1.10 and the Python checker. */
export const ONNX_IR_VERSION = 8;
/** Default-domain opset written by mbrl-node (≥ 13 is required for Split/Squeeze/ReduceSum with tensor inputs). */
export const ONNX_OPSET_VERSION = 17;

/** `TensorProto.DataType` values we use. */
export const OnnxDataType = {
  FLOAT: 1,
  INT64: 7,
  DOUBLE: 11,
} as const;
export type OnnxDataTypeCode = (typeof OnnxDataType)[keyof typeof OnnxDataType];

/** `AttributeProto.AttributeType` values. */
export const OnnxAttributeType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
} as const;

// The subset of onnx.proto we need, with the spec's field numbers. proto2 like the canonical
// onnx.proto (onnx.proto3 is generated from the same source): optional fields have explicit
// presence, so a zero (`axis = 0`, `alpha = 0.0`) is written, not dropped as a proto3 default
// would be — the ONNX checker requires exactly one value field on each attribute. Repeated
// scalars are unpacked except where onnx.proto asks for packed, to match its wire format.
const ONNX_SCHEMA = `
syntax = "proto2";
package onnx;

message AttributeProto {
  optional string name = 1;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  optional string doc_string = 13;
  optional int32 type = 20;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
  optional string domain = 7;
}

message ModelProto {
  optional int64 ir_version = 1;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
}

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4 [packed = true];
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional bytes raw_data = 9;
  optional string doc_string = 12;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
  optional string denotation = 6;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
`;

/** `AttributeProto`, as a plain object (only the fields matching `type` are set). */
export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  doc_string?: string;
}

/** `TensorProto`; mbrl-node writes data as little-endian `raw_data`. */
export interface TensorProto {
  name?: string;
  dims: number[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int64_data?: number[];
  doc_string?: string;
}

/** One dimension of a shape: a fixed size or a symbolic name (a dynamic dimension such as `batch`). */
export interface TensorShapeDimension {
  dim_value?: number;
  dim_param?: string;
  denotation?: string;
}

/** `TypeProto` restricted to tensors. */
export interface TypeProto {
  tensor_type?: { elem_type: number; shape?: { dim: TensorShapeDimension[] } };
  denotation?: string;
}

/** `ValueInfoProto`: a graph input or output. */
export interface ValueInfoProto {
  name: string;
  type?: TypeProto;
  doc_string?: string;
}

/** `NodeProto`. */
export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute?: AttributeProto[];
  doc_string?: string;
}

/** `GraphProto`. */
export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info?: ValueInfoProto[];
  doc_string?: string;
}

/** `ModelProto`. */
export interface ModelProto {
  ir_version: number;
  opset_import: { domain?: string; version: number }[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: number;
  doc_string?: string;
  graph: GraphProto;
  metadata_props?: { key: string; value: string }[];
}

let modelType: protobuf.Type | undefined;

/** The reflected `onnx.ModelProto` type, parsed once on first use. */
function modelProtoType(): protobuf.Type {
  if (modelType === undefined) {
    const root = protobuf.parse(ONNX_SCHEMA, { keepCase: true }).root;
    modelType = root.lookupType('onnx.ModelProto');
  }
  return modelType;
}

/**
 * Serialises a `ModelProto` to the ONNX wire format (a `.onnx` file's bytes).
 * @throws Error when the object does not fit the schema (protobufjs's `verify` message).
 */
export function encodeModelProto(model: ModelProto): Uint8Array {
  const type = modelProtoType();
  const problem = type.verify(model);
  if (problem !== null) throw new Error(`encodeModelProto: invalid ModelProto: ${problem}`);
  return type.encode(type.fromObject(model)).finish();
}

/**
 * Parses the bytes of an ONNX model back into a plain `ModelProto` object (int64 fields as
 * numbers, bytes as `Uint8Array`). Fields outside our schema subset are skipped.
 */
export function decodeModelProto(bytes: Uint8Array): ModelProto {
  const type = modelProtoType();
  const message = type.decode(bytes);
  return type.toObject(message, { longs: Number, arrays: true, defaults: false, oneofs: false }) as ModelProto;
}
