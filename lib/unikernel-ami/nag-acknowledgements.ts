/**
 * Acknowledgements of cdk-nag findings on the resources the library creates, written so that both
 * cdk-nag major versions read them while the library does not depend on cdk-nag:
 *
 * - cdk-nag 2 reads `Metadata.cdk_nag.rules_to_suppress` of the CloudFormation resource itself
 *   (`{ id, reason, applies_to }`; a finding such as `Resource::*` goes in `applies_to`, never in `id`,
 *   and a reason has at least 10 characters);
 * - cdk-nag 3 reads the construct metadata `Validations.ACKNOWLEDGED_RULES_METADATA_KEY`
 *   (`aws:cdk:acknowledged-rules`) of the resource or an ancestor, one key per finding
 *   (`AwsSolutions-IAM5[Resource::*]`), with no prefix matching. `Validations.acknowledge()` would write
 *   it too, but it refuses ids holding more than one `::`, as ARN findings do, hence the metadata.
 */
import { CfnResource, Stack, Validations } from 'aws-cdk-lib';

/** cdk-nag 2's CloudFormation metadata key. */
const NAG_V2_METADATA = 'cdk_nag';

interface NagV2Suppression {
  readonly id: string;
  readonly reason: string;
  readonly applies_to?: string[];
}

/**
 * Acknowledges `rule` (e.g. `AwsSolutions-IAM5`) on `resource`: only the given findings when there
 * are any, else the whole rule. Reasons are ASCII so that cdk-nag 2 keeps them readable.
 */
export function acknowledgeNagRule(resource: CfnResource, rule: string, reason: string, findings: readonly string[] = []): void {
  if (!/^[\x20-\x7e]{10,}$/.test(reason)) {
    throw new Error(`A cdk-nag acknowledgement reason must be at least 10 printable ASCII characters: ${JSON.stringify(reason)}`);
  }
  const ids = findings.length === 0 ? [rule] : findings.map((finding) => `${rule}[${finding}]`);
  resource.node.addMetadata(Validations.ACKNOWLEDGED_RULES_METADATA_KEY, Object.fromEntries(ids.map((id) => [id, reason])));

  const existing: NagV2Suppression[] = resource.getMetadata(NAG_V2_METADATA)?.rules_to_suppress ?? [];
  const suppression: NagV2Suppression = findings.length === 0 ? { id: rule, reason } : { id: rule, reason, applies_to: [...findings] };
  resource.addMetadata(NAG_V2_METADATA, { rules_to_suppress: [...existing, suppression] });
}

/**
 * The IAM5 finding cdk-nag reports for a wildcard resource: `Resource::` and the ARN as the template
 * holds it, with `Ref`s and `Fn::GetAtt`s written `<Name>` and `<Name.Attribute>`, joins flattened.
 */
export function wildcardResourceFinding(scope: CfnResource, arn: string): string {
  return `Resource::${flattenReference(Stack.of(scope).resolve(arn))}`;
}

/** What cdk-nag (both versions, utils/flatten-cfn-reference) makes of a resolved reference. */
function flattenReference(node: unknown): string {
  if (node === undefined) {
    return '';
  }
  if (typeof node === 'string') {
    return node.replace(/\${/g, '<').replace(/}/g, '>');
  }
  const fn = node as { [key: string]: any };
  if (fn['Fn::Join']) {
    const [delimiter, items] = fn['Fn::Join'] as [string, unknown[]];
    return items.map(flattenReference).join(delimiter);
  }
  if (fn['Fn::Sub']) {
    return flattenReference(fn['Fn::Sub']);
  }
  if (fn['Fn::GetAtt']) {
    const [resource, attribute] = fn['Fn::GetAtt'] as [unknown, unknown];
    return `<${flattenReference(resource)}.${flattenReference(attribute)}>`;
  }
  if (fn['Fn::ImportValue']) {
    return flattenReference(fn['Fn::ImportValue']);
  }
  if (fn.Ref) {
    return `<${flattenReference(fn.Ref)}>`;
  }
  return JSON.stringify(node);
}
