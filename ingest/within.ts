/**
 * Waits for `work` at most `ms`: 'done' when it settles in time (its rejection, rethrown), else
 * 'timeout', and `work` goes on unawaited. What bounds every shutdown step (#20: a SIGTERM must
 * end in a stated time whatever the broker, InfluxDB or a feed client does).
 */
export async function within(ms: number, work: Promise<unknown>): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, ms, 'timeout')))
  try {
    return await Promise.race([work.then(() => 'done' as const), timeout])
  } finally {
    clearTimeout(timer)
  }
}
