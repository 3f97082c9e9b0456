/**
 * `deno task start`: runs the live worker until SIGINT/SIGTERM (then finishes the batch in flight,
 * publishes, checkpoints, acks, drains and exits 0). Exit 2 on a configuration error.
 *
 * @module
 */
import {
  ConfigError,
  LIVE_USAGE,
  parseLiveFlags,
  resolveLiveConfig,
} from "../config/live_config.ts";
import { NoRespondersError, RequestError, TimeoutError } from "@nats-io/nats-core";
import { JetStreamApiError } from "@nats-io/jetstream";
import { NatsServerMissingError } from "../nats/server_process.ts";
import { startWorker } from "../live/worker.ts";

/** Runs `start`; resolves with the exit code. */
export async function run(args: string[]): Promise<number> {
  let config;
  try {
    const flags = parseLiveFlags(args);
    if (flags.help) {
      console.log(LIVE_USAGE);
      return 0;
    }
    config = resolveLiveConfig(flags, Deno.env.toObject());
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`start: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const log = (line: string) => console.error(`[worker] ${line}`);
  let worker;
  try {
    worker = await _startRetrying(() => startWorker(config, { log }), log);
  } catch (e) {
    if (e instanceof NatsServerMissingError) {
      console.error(`start: ${e.message}`);
      return 1;
    }
    if (e instanceof ConfigError) {
      // E.g. the server's partition mapping does not match --partitions.
      console.error(`start: ${e.message}`);
      return 2;
    }
    console.error(`start: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
  const w = worker;
  if (w.httpPort !== undefined) console.log(`dashboard: http://127.0.0.1:${w.httpPort}/`);
  let firstSignalAt = -1;
  const onSignal = () => {
    const now = performance.now();
    if (firstSignalAt < 0) {
      firstSignalAt = now;
      log("stopping: finishing the batch in flight (signal again to abort)");
      w.stop().catch(() => {});
      return;
    }
    // One Ctrl-C arrives twice under `deno task` (the terminal signals the whole process group
    // and the task runner passes it on): only a signal well after the first one aborts.
    if (now - firstSignalAt < REPEAT_MS) return;
    log("aborted: the batch in flight is redelivered on the next start");
    w.abort();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  log("running (SIGINT/SIGTERM: finish what is in flight and stop)");
  try {
    await w.done;
    await w.stop();
    log(`stopped after ${w.metrics.observations} observations`);
    return 0;
  } catch (e) {
    log(`stopped on error: ${e instanceof Error ? e.message : e}`);
    await w.stop().catch(() => {});
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

/** A stop signal within this long of the first is the same request, not a second one. */
const REPEAT_MS = 2000;

/** How long start-up keeps retrying while the server does not answer its setup requests. */
const START_RETRY_MS = 120_000;

/**
 * Starts the worker, again after a pause while the server's JetStream does not answer in time (a
 * cluster still electing its leaders, a server restarting): setup requests time out or find no
 * responder then, and the worker is worth starting once it answers.
 */
async function _startRetrying<T>(start: () => Promise<T>, log: (l: string) => void): Promise<T> {
  const deadline = Date.now() + START_RETRY_MS;
  for (let attempt = 1;; attempt++) {
    try {
      return await start();
    } catch (e) {
      const transient = e instanceof TimeoutError || e instanceof NoRespondersError ||
        e instanceof RequestError || (e instanceof JetStreamApiError && e.code === 503);
      if (!transient || Date.now() > deadline) throw e;
      log(`start-up attempt ${attempt} failed (${e.message}); retrying in 2 s`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}
