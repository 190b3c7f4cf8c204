#!/usr/bin/env node
/**
 * Times unary calls of the TypeScript client against a running server: sequential GetCube calls of one cube, and
 * as many grpc.health.v1 Health.Check calls over the same transport (the floor: the same client and HTTP/2
 * connection, next to nothing in the server's handler). Prints every latency as JSON, for bench/clients.py:
 *
 *   {"client": "typescript", "get_cube_ns": [...], "health_ns": [...]}
 *
 * Both kinds alternate in rounds, so that a change of machine load touches both alike. Plaintext only: it is for
 * a server on a loopback address.
 *
 *   node dist/bench/unary.js --target 127.0.0.1:50051 --token-file DATA/admin.token --cube spaces/s/cubes/c
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { createClient } from "@connectrpc/connect";

import { MemosClient } from "../client.js";
import { Health, SERVING } from "./health.js";

/** How many calls of one kind run before the other kind's turn. */
const ROUND = 100;

const { values } = parseArgs({
  options: {
    target: { type: "string", default: "127.0.0.1:50051" },
    "token-file": { type: "string" },
    cube: { type: "string" },
    calls: { type: "string", default: "2000" },
    warmup: { type: "string", default: "200" },
  },
});
const cube = values.cube;
if (cube === undefined) {
  process.stderr.write("unary: --cube spaces/{space}/cubes/{cube} is required\n");
  process.exit(2);
}
const calls = Number(values.calls);
const warmup = Number(values.warmup);
const tokenFile = values["token-file"];
const token = tokenFile === undefined ? undefined : readFileSync(tokenFile, "utf8").trim();
const client = MemosClient.connect({ baseUrl: `http://${values.target}`, ...(token === undefined ? {} : { token }) });
const health = createClient(Health, client.transport);

async function getCube(): Promise<void> {
  await client.getCube(cube as string);
}

async function check(): Promise<void> {
  const reply = await health.check({});
  if (reply.status !== SERVING) throw new Error(`Health.Check: status ${reply.status}`);
}

for (let i = 0; i < warmup; i++) {
  await getCube();
  await check();
}
const samples = { client: "typescript", get_cube_ns: [] as number[], health_ns: [] as number[] };
for (let done = 0; done < calls; done += ROUND) {
  const n = Math.min(ROUND, calls - done);
  for (const [call, into] of [
    [getCube, samples.get_cube_ns],
    [check, samples.health_ns],
  ] as const) {
    for (let i = 0; i < n; i++) {
      const started = process.hrtime.bigint();
      await call();
      into.push(Number(process.hrtime.bigint() - started));
    }
  }
}
process.stdout.write(JSON.stringify(samples) + "\n");
