// Regenerates the code into a temporary directory and fails if src/gen differs from it (stale generated code).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "memos-gen-"));
try {
  const buf = join(here, "node_modules", ".bin", "buf");
  const run = spawnSync(buf, ["generate", "--template", "buf.gen.yaml", "-o", tmp], { cwd: here, stdio: "inherit" });
  if (run.status !== 0) process.exit(run.status ?? 1);
  const files = (dir) =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? files(path) : [path];
    });
  const checked = join(here, "src", "gen");
  const fresh = join(tmp, "src", "gen");
  const a = new Map(files(checked).map((p) => [relative(checked, p), readFileSync(p)]));
  const b = new Map(files(fresh).map((p) => [relative(fresh, p), readFileSync(p)]));
  const stale = [...new Set([...a.keys(), ...b.keys()])].filter((k) => !a.get(k)?.equals(b.get(k) ?? Buffer.alloc(0)) || !b.has(k));
  if (stale.length > 0) {
    console.error(`clients/typescript/src/gen is stale (${stale.join(", ")}): run npm run generate`);
    process.exit(1);
  }
  console.log("clients/typescript/src/gen is up to date");
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
