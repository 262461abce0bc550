/**
 * A promise-chain mutex: tasks run one after another in submission order. A failed task rejects only its
 * own caller; the chain goes on with the next one.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once everything submitted so far has finished. */
  async drained(): Promise<void> {
    await this.tail;
  }
}
