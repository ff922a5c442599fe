/**
 * Presigned S3 GET URLs for the helper: the handler signs one for each staged object of the build
 * right before every SendCommand, and the helper script downloads them with curl, so the helper's
 * role needs no S3 permission at all and can read nothing but its own build's objects.
 *
 * A presigned request is authorized as its signer, the handler role, when S3 receives it, and it
 * stops working at the earlier of its X-Amz-Expires and the end of the signing credentials' session
 * (for a Lambda role, a length AWS does not document). The URL is SigV4, signed for the client's
 * region, the Lambda's: the staging bucket is created in the same stack, hence that region. The
 * bucket is encrypted with SSE-S3; were it SSE-KMS, the key's kms:Decrypt would be the signer's.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { clock } from './clock';

/**
 * How long a URL stays valid. SendCommand goes out only once the helper's agent is online, and the
 * script downloads first thing; an unused URL expires with the handler's next round, which signs
 * anew when it has to send the command again.
 */
export const STAGED_URL_EXPIRY_SECONDS = 10 * 60;

/** A URL that lets its bearer GET exactly `bucket`/`key` for STAGED_URL_EXPIRY_SECONDS from now. */
export function presignStagedObject(s3: S3Client, bucket: string, key: string): Promise<string> {
  return getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: key }), {
    expiresIn: STAGED_URL_EXPIRY_SECONDS,
    signingDate: new Date(clock().now()),
  });
}
