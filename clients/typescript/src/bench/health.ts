/**
 * grpc.health.v1's Health service, described here so that a client can call Health.Check over its own transport
 * (the generated code covers memos.v1 only). The description is the message and service shapes of
 * grpc/health/v1/health.proto, enough to encode a request and decode a reply.
 */
import { create, createFileRegistry, type Message } from "@bufbuild/protobuf";
import type { GenMessage, GenService } from "@bufbuild/protobuf/codegenv2";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

const PACKAGE = "grpc.health.v1";
const optional = FieldDescriptorProto_Label.OPTIONAL;

const file = create(FileDescriptorProtoSchema, {
  name: "grpc/health/v1/health.proto",
  package: PACKAGE,
  syntax: "proto3",
  messageType: [
    {
      name: "HealthCheckRequest",
      field: [{ name: "service", jsonName: "service", number: 1, label: optional, type: FieldDescriptorProto_Type.STRING }],
    },
    {
      name: "HealthCheckResponse",
      field: [
        {
          name: "status",
          jsonName: "status",
          number: 1,
          label: optional,
          type: FieldDescriptorProto_Type.ENUM,
          typeName: `.${PACKAGE}.HealthCheckResponse.ServingStatus`,
        },
      ],
      enumType: [
        {
          name: "ServingStatus",
          value: [
            { name: "UNKNOWN", number: 0 },
            { name: "SERVING", number: 1 },
            { name: "NOT_SERVING", number: 2 },
            { name: "SERVICE_UNKNOWN", number: 3 },
          ],
        },
      ],
    },
  ],
  service: [
    {
      name: "Health",
      method: [
        { name: "Check", inputType: `.${PACKAGE}.HealthCheckRequest`, outputType: `.${PACKAGE}.HealthCheckResponse` },
      ],
    },
  ],
});

const found = createFileRegistry(file, () => undefined).getService(`${PACKAGE}.Health`);
if (found === undefined) throw new Error("grpc.health.v1.Health is missing from its own description");

export type HealthCheckRequest = Message<"grpc.health.v1.HealthCheckRequest"> & { service: string };
export type HealthCheckResponse = Message<"grpc.health.v1.HealthCheckResponse"> & { status: number };

/** The service, typed as generated code would type it (the registry built it from the description above). */
export const Health = found as unknown as GenService<{
  check: { methodKind: "unary"; input: GenMessage<HealthCheckRequest>; output: GenMessage<HealthCheckResponse> };
}>;

/** HealthCheckResponse.ServingStatus.SERVING. */
export const SERVING = 1;
