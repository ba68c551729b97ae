/**
 * `@lockstep/react`: React bindings for `@lockstep/client`.
 *
 * ```tsx
 * <LockstepProvider options={{ url, getToken }}>
 *   <LockstepErrorBoundary fallback={({ error, reset }) => <Retry error={error} onRetry={reset} />}>
 *     <Channel id="general" />
 *   </LockstepErrorBoundary>
 * </LockstepProvider>
 *
 * function Channel({ id }: { id: string }) {
 *   const { status, messages, send } = useChannel(id, { throwOnError: true });
 *   const members = usePresence(id);
 *   const typing = useTyping(id);
 *   ...
 * }
 * ```
 */
export { ChannelRefs, LockstepProvider, useLockstep } from "./provider.js";
export type { LockstepContextValue, LockstepProviderProps } from "./provider.js";
export { useChannel, useConnection, usePresence, useReadReceipts, useTyping } from "./hooks.js";
export type { ChannelView, ConnectionView, ReadReceipts, UseChannelOptions } from "./hooks.js";
export { LockstepErrorBoundary } from "./boundary.js";
export type { FallbackProps, LockstepErrorBoundaryProps } from "./boundary.js";
