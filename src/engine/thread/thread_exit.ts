/**
 * Waiting for a Web Worker's thread to end (Linux). `worker.terminate()` returns at once while
 * the worker's thread goes on tearing its runtime down; a process that exits meanwhile races
 * that teardown. With webgpu on Mesa (llvmpipe through EGL) the race aborted about one exit in
 * 25 under parallel load (wgpu's EGL teardown panicking on a display the exiting process had
 * already terminated, then heap corruption).
 *
 * @module
 */

/** The calling thread's id (`/proc/thread-self`), or null where there is none (not Linux). */
export function currentThreadId(): number | null {
  try {
    const tid = Number(Deno.readLinkSync("/proc/thread-self").split("/").pop());
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/** Resolves once thread `tid` of this process has ended, or after `timeoutMs` (false: a hang bound). */
export async function threadEnded(tid: number, timeoutMs = 30_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (let wait = 1;; wait = Math.min(wait * 2, 20)) {
    try {
      Deno.statSync(`/proc/self/task/${tid}`);
    } catch {
      return true;
    }
    if (performance.now() >= deadline) return false;
    await new Promise<void>((r) => setTimeout(r, wait));
  }
}
