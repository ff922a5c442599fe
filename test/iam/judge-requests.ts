/**
 * Judging whole requests: every authorization a request needs (request-authorizations.ts), each
 * against the policies of the role that makes it (simulator.ts). A request is allowed when every
 * one of its authorizations is.
 */
import { RecordedRequest, RecordedTag } from '../fixtures/recorded-request';
import { ResolvedStack } from './proof-stack';
import { Authorization, RequestAuthorizations } from './request-authorizations';
import { PolicyDocument } from './role-policies';
import { describe as describeCheck, IamCheck, judge, Judgement } from './simulator';

/** How a recorded request is named in the proof: `ec2:RunInstances`, `helper ssm:UpdateInstanceInformation`, or `presigned s3:GetObject`. */
export function labelOf(request: RecordedRequest): string {
  const who = request.principal === 'helper-instance' ? 'helper ' : request.principal === 'presigned-url' ? 'presigned ' : '';
  return `${who}${request.service}:${request.action}`;
}

export interface RequestJudgement {
  readonly request: string;
  readonly allowed: boolean;
  readonly judgements: readonly Judgement[];
}

export class RequestJudge {
  readonly authorizations: RequestAuthorizations;

  constructor(private readonly proof: ResolvedStack) {
    this.authorizations = new RequestAuthorizations(proof.authorization);
  }

  /** Judges a recorded request, with the role of whoever made it (the handler, or a helper instance). */
  async request(request: RecordedRequest): Promise<RequestJudgement> {
    return this.judgeAll(labelOf(request), this.authorizations.of(request));
  }

  async judgeAll(request: string, authorizations: readonly Authorization[]): Promise<RequestJudgement> {
    const judgements: Judgement[] = [];
    for (const authorization of authorizations) {
      const role = authorization.caller === 'handler' ? this.proof.handler : this.proof.helper;
      if (role === undefined) {
        throw new Error(`${describeCheck(authorization)}: the stack has no helper role`);
      }
      judgements.push(await judge(role, authorization, this.proof.authorization.account, this.resourcePolicyOf(authorization)));
    }
    return { request, allowed: judgements.length > 0 && judgements.every((j) => j.decision === 'Allowed'), judgements };
  }

  /** The key policy of a key, or the bucket policy of a bucket, that the template creates. */
  private resourcePolicyOf(check: IamCheck): PolicyDocument | undefined {
    const resolver = this.proof.resolver;
    if (check.action.startsWith('kms:')) {
      const keys = Object.keys(resolver.resourcesOfType('AWS::KMS::Key'));
      const key = keys.find((id) => resolver.resolve({ 'Fn::GetAtt': [id, 'Arn'] }) === check.resource);
      if (key === undefined && check.action === 'kms:DescribeKey') {
        return awsManagedKeyPolicy(this.proof.authorization.account);
      }
      return key === undefined ? undefined : resolver.resolve(resolver.template.Resources[key].Properties.KeyPolicy);
    }
    if (check.action.startsWith('s3:')) {
      const bucket = /^arn:[^:]+:s3:::([^/]+)(?:\/|$)/.exec(check.resource)?.[1];
      const policy = Object.values(resolver.resourcesOfType('AWS::S3::BucketPolicy')).find((p) => p.Bucket === bucket);
      return policy?.PolicyDocument;
    }
    return undefined;
  }
}

/**
 * The key policy of a key outside the template that a proof lifecycle describes: the AWS managed
 * key for EBS, as the encryption-by-default check reads it (handler/encryption-default.ts). An AWS
 * managed key's policy lets the account's principals read its metadata (kms:Describe*, Get*, List*)
 * as their IAM policies allow (KMS developer guide, "AWS managed keys" key policies).
 */
function awsManagedKeyPolicy(account: string): PolicyDocument {
  return {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: ['kms:Describe*', 'kms:Get*', 'kms:List*'], Resource: '*' }],
  } as PolicyDocument;
}

/** The authorizations that were not allowed, for failure messages. */
export function denials(judgement: RequestJudgement): string[] {
  return judgement.judgements.filter((j) => j.decision !== 'Allowed').map((j) => `${j.decision}: ${describeCheck(j.check)}`);
}

/** A request as the AWS fake records it. */
export function recorded(service: RecordedRequest['service'], action: string, input: { [key: string]: unknown },
  resourceTags: { [id: string]: readonly RecordedTag[] } = {}): RecordedRequest {
  return { service, action, input, resourceTags };
}
