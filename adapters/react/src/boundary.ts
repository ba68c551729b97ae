/**
 * An error boundary for the lockstep hooks: catches what
 * `useChannel(id, { throwOnError: true })` throws (a subscription refused
 * for good, a command refused at once) and renders `fallback` with a
 * `reset` that mounts the children again, which subscribes the channel
 * anew. Failures of single messages are not errors here: they stay in the
 * channel's items as `status: "failed"` (with `error`), to retry or dismiss.
 *
 * ```tsx
 * <LockstepErrorBoundary fallback={({ error, reset }) => (
 *   <p>{error.message} <button onClick={reset}>retry</button></p>
 * )}>
 *   <Channel id="general" />
 * </LockstepErrorBoundary>
 * ```
 */
import { Component, type ErrorInfo, type ReactNode } from "react";

/** What the fallback gets. */
export interface FallbackProps {
  /** What was thrown (a `LockstepError` from the hooks). */
  readonly error: Error;
  /** Clears the error and mounts the children again. */
  readonly reset: () => void;
}

/** The boundary's props. */
export interface LockstepErrorBoundaryProps {
  /** Rendered instead of the children while there is an error. */
  readonly fallback: (props: FallbackProps) => ReactNode;
  /** Told of each error caught (logging, metrics). */
  readonly onError?: (error: Error, info: ErrorInfo) => void;
  /** Called by `reset`, before the children mount again. */
  readonly onReset?: () => void;
  readonly children?: ReactNode;
}

interface State {
  error: Error | null;
}

/** See the module's doc. */
export class LockstepErrorBoundary extends Component<LockstepErrorBoundaryProps, State> {
  override state: State = { error: null };

  static getDerivedStateFromError(error: unknown): State {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  override componentDidCatch(error: Error, info: ErrorInfo): void {
    this.props.onError?.(error, info);
  }

  private readonly reset = (): void => {
    this.props.onReset?.();
    this.setState({ error: null });
  };

  override render(): ReactNode {
    const { error } = this.state;
    if (error !== null) return this.props.fallback({ error, reset: this.reset });
    return this.props.children;
  }
}
