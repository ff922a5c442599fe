import { createHash } from 'crypto';

const BUILD_ID_PREFIX = 'mua-';
const BUILD_ID_PATTERN = /^mua-[0-9a-f]{16}$/;

/**
 * The id of one build, used as the physical resource id, the client token and the value of
 * BUILD_ID_TAG. It depends only on the request, so a retried request (same RequestId) maps to the
 * same build, and each Create or rebuilding Update (a new RequestId) to a new one.
 */
export function buildIdOf(request: { readonly StackId: string; readonly LogicalResourceId: string; readonly RequestId: string }): string {
  const digest = createHash('sha256')
    .update(`${request.StackId}\n${request.LogicalResourceId}\n${request.RequestId}`)
    .digest('hex');
  return BUILD_ID_PREFIX + digest.slice(0, 16);
}

/** Whether a physical id names a build (and not, e.g., the provider framework's failed-Create marker). */
export function isBuildId(physicalResourceId: string | undefined): physicalResourceId is string {
  return physicalResourceId !== undefined && BUILD_ID_PATTERN.test(physicalResourceId);
}
