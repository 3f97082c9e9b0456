/**
 * `deno task build:dashboard`: bundles the dashboard page (`src/dashboard/app/main.ts`, with
 * `@nats-io/*` and uPlot from the pinned npm packages) into `src/dashboard/static/app.js` with
 * `deno bundle --platform browser`, and copies uPlot's stylesheet next to it. The outputs are
 * checked in, so serving the page needs no build and nothing comes from a CDN.
 *
 * @module
 */
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const staticDir = join(root, "src/dashboard/static");

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: root, stderr: "inherit" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code})`);
  return new TextDecoder().decode(out.stdout);
}

await run(Deno.execPath(), [
  "bundle",
  "--platform",
  "browser",
  "--minify",
  "--quiet",
  "-o",
  join(staticDir, "app.js"),
  "src/dashboard/app/main.ts",
]);

// uPlot's CSS from the npm cache (the version pinned in deno.json).
const pin = JSON.parse(await Deno.readTextFile(join(root, "deno.json"))).imports.uplot as string;
const version = pin.split("@").at(-1)!;
const info = JSON.parse(await run(Deno.execPath(), ["info", "--json"]));
const css = join(info.npmCache, "registry.npmjs.org", "uplot", version, "dist", "uPlot.min.css");
await Deno.copyFile(css, join(staticDir, "uplot.css"));
const size = (await Deno.stat(join(staticDir, "app.js"))).size;
console.log(
  `built src/dashboard/static/app.js (${(size / 1024).toFixed(0)} KiB), uplot.css ${version}`,
);
