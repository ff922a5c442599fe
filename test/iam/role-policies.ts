/**
 * The identity policies of a role as IAM would hold them after the deployment: the role's inline
 * policies, the AWS::IAM::Policy and customer managed AWS::IAM::ManagedPolicy resources attached to
 * it (found as the construct tests find them, test/fixtures/construct/attached-policies.ts), resolved.
 * An AWS managed policy cannot be judged from the template, so a role holding one is refused (the
 * library's roles hold none).
 */
import { attachedPolicies } from '../fixtures/construct/attached-policies';
import { TemplateResolver } from './template-resolver';

export interface PolicyDocument {
  readonly Version?: string;
  readonly Statement: ReadonlyArray<{ readonly [key: string]: any }>;
}

export interface RolePolicies {
  /** The role's logical id. */
  readonly logicalId: string;
  /** The role's ARN in the deployment. */
  readonly arn: string;
  /** Each policy with a name for the simulator's explanations. */
  readonly policies: ReadonlyArray<{ readonly name: string; readonly policy: PolicyDocument }>;
}

/** The policies of the one role whose logical id starts with `prefix`. */
export function rolePolicies(resolver: TemplateResolver, prefix: string): RolePolicies {
  const { logicalId, policies } = attachedPolicies(resolver.template, prefix);
  return {
    logicalId,
    arn: resolver.resolve({ 'Fn::GetAtt': [logicalId, 'Arn'] }),
    policies: policies.map(({ name, document }) => ({ name, policy: resolver.resolve(document) })),
  };
}

/** Every IAM policy document of the template (identity, trust, bucket and key policies), resolved, by where it is. */
export function allPolicyDocuments(resolver: TemplateResolver): { where: string; document: PolicyDocument }[] {
  const documents: { where: string; document: PolicyDocument }[] = [];
  for (const [id, resource] of Object.entries(resolver.template.Resources)) {
    const properties = resource.Properties ?? {};
    const add = (where: string, document: unknown) => documents.push({ where: `${id} (${resource.Type}) ${where}`, document: resolver.resolve(document) });
    switch (resource.Type) {
      case 'AWS::IAM::Role':
        add('AssumeRolePolicyDocument', properties.AssumeRolePolicyDocument);
        for (const inline of properties.Policies ?? []) {
          add(inline.PolicyName, inline.PolicyDocument);
        }
        break;
      case 'AWS::IAM::Policy':
      case 'AWS::IAM::ManagedPolicy':
      case 'AWS::S3::BucketPolicy':
        add('PolicyDocument', properties.PolicyDocument);
        break;
      case 'AWS::KMS::Key':
        add('KeyPolicy', properties.KeyPolicy);
        break;
      default:
        break;
    }
  }
  return documents;
}
