/**
 * What a smoke run's output, table and figures say about themselves. The `smoke` presets run a
 * few steps on a subset so that tests and first-time users see the whole pipeline in seconds;
 * their numbers are noise (ERA's rows agree to three decimals), and nothing on screen or on a
 * figure may let them pass for a result.
 */
export function pipelineCheckNote(preset: string): string | undefined {
  return preset === 'smoke'
    ? 'smoke run: checks the pipeline only; its numbers mean nothing'
    : undefined;
}

/** `table` with {@link pipelineCheckNote}'s sentence above it when the preset has one. */
export function withPipelineCheckNote(preset: string, table: string): string {
  const note = pipelineCheckNote(preset);
  return note === undefined ? table : `**${note}**\n\n${table}`;
}
