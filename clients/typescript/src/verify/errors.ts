/** A verification failure: `reason` is the protocol's stable UPPER_SNAKE reason, `message` says why for a person. */
export class VerifyError extends Error {
  readonly reason: string;

  constructor(reason: string, message: string) {
    super(message);
    this.name = "VerifyError";
    this.reason = reason;
  }
}
