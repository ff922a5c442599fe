/**
 * SDK clients, created once per Lambda container. The SDK reads the region from AWS_REGION (set by
 * Lambda) and an endpoint override from AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>, so tests and
 * local stacks can point the handler elsewhere without code changes.
 */
import { EBSClient } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';

export interface AwsClients {
  readonly ec2: EC2Client;
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  readonly ebs: EBSClient;
  readonly kms: KMSClient;
}

/**
 * The SDK waits for a response for ever by default; a request whose response is lost would then
 * hang until Lambda stops the invocation. With a timeout it fails with TimeoutError, which the
 * handler retries (every step is safe to repeat). PutSnapshotBlock carries 512 KiB, well within it.
 */
const requestHandler = { connectionTimeout: 5_000, requestTimeout: 60_000 };

export const clients: AwsClients = {
  ec2: new EC2Client({ requestHandler }),
  // A kernel bucket of another region answers 301 PermanentRedirect to a regional endpoint; with
  // this the SDK retries the request in the bucket's region instead of failing.
  s3: new S3Client({ requestHandler, followRegionRedirects: true }),
  ssm: new SSMClient({ requestHandler }),
  ebs: new EBSClient({ requestHandler }),
  kms: new KMSClient({ requestHandler }),
};
