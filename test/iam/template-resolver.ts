/**
 * Resolves a synthesized CloudFormation template as CloudFormation would for one deployment: a fixed
 * account, region and stack name, and a made-up but well-formed physical id for every resource
 * (derived from its logical id, so the same template always resolves the same way). Only what the
 * library's templates use is supported; anything else throws, so an unsupported intrinsic can never
 * silently resolve to something that makes a policy look right.
 */
import { createHash } from 'crypto';
import { STACK_ID } from '../fixtures/custom-resource';

export interface DeploymentEnvironment {
  readonly account: string;
  readonly region: string;
  readonly partition: string;
  readonly urlSuffix: string;
  readonly stackName: string;
  /** Values of the template's parameters (an SSM parameter's value, for the AL2023 image). */
  readonly parameters: { readonly [name: string]: string };
}

export const PROOF_ENVIRONMENT: DeploymentEnvironment = {
  account: '123456789012',
  region: 'us-east-1',
  partition: 'aws',
  urlSuffix: 'amazonaws.com',
  stackName: 'UnikernelStack',
  parameters: {},
};

/** The value CloudFormation returns for an SSM parameter of type AWS::EC2::Image::Id here. */
export const RESOLVED_AL2023_IMAGE = 'ami-0a1b2c3d4e5f67890';

export interface CfnTemplate {
  readonly Resources: { readonly [logicalId: string]: { readonly Type: string; readonly Properties?: any; readonly [key: string]: any } };
  readonly Parameters?: { readonly [name: string]: { readonly Type: string; readonly Default?: string } };
  readonly Mappings?: { readonly [name: string]: { readonly [key: string]: { readonly [key: string]: unknown } } };
}

export class TemplateResolver {
  constructor(readonly template: CfnTemplate, readonly env: DeploymentEnvironment = PROOF_ENVIRONMENT) {}

  /** The stack's id; its UUID is the one the lifecycle driver's events carry (test/fixtures/custom-resource.ts), so both are one deployment. */
  get stackId(): string {
    return `arn:${this.env.partition}:cloudformation:${this.env.region}:${this.env.account}:stack/${this.env.stackName}/${STACK_ID.split('/')[2]}`;
  }

  /** The value of `node` with every intrinsic function and reference resolved. */
  resolve(node: unknown): any {
    if (Array.isArray(node)) {
      return node.map((item) => this.resolve(item)).filter((item) => item !== NO_VALUE);
    }
    if (node === null || typeof node !== 'object') {
      return node;
    }
    const entries = Object.entries(node as { [key: string]: unknown });
    if (entries.length === 1 && (entries[0][0] === 'Ref' || entries[0][0].startsWith('Fn::'))) {
      return this.intrinsic(entries[0][0], entries[0][1]);
    }
    const result: { [key: string]: unknown } = {};
    for (const [key, value] of entries) {
      const resolved = this.resolve(value);
      if (resolved !== NO_VALUE) {
        result[key] = resolved;
      }
    }
    return result;
  }

  /** Resources of a type, resolved, by logical id. */
  resourcesOfType(type: string): { [logicalId: string]: any } {
    return Object.fromEntries(Object.entries(this.template.Resources).filter(([, r]) => r.Type === type).map(([id, r]) => [id, this.resolve(r.Properties ?? {})]));
  }

  private intrinsic(name: string, argument: unknown): unknown {
    switch (name) {
      case 'Ref':
        return this.ref(argument as string);
      case 'Fn::GetAtt': {
        const [logicalId, attribute] = typeof argument === 'string' ? (argument.split('.') as [string, string]) : (argument as [string, string]);
        return this.getAtt(logicalId, attribute);
      }
      case 'Fn::Join': {
        const [delimiter, items] = argument as [string, unknown[]];
        return (this.resolve(items) as unknown[]).map(String).join(delimiter);
      }
      case 'Fn::Select': {
        const [index, list] = argument as [unknown, unknown];
        return (this.resolve(list) as unknown[])[Number(this.resolve(index))];
      }
      case 'Fn::Split': {
        const [delimiter, source] = argument as [string, unknown];
        return String(this.resolve(source)).split(delimiter);
      }
      case 'Fn::GetAZs':
        return ['a', 'b', 'c'].map((letter) => `${this.env.region}${letter}`);
      case 'Fn::FindInMap': {
        const [map, key, attribute] = (argument as unknown[]).map((item) => this.resolve(item)) as [string, string, string];
        const value = this.template.Mappings?.[map]?.[key]?.[attribute];
        if (value === undefined) {
          throw new Error(`Fn::FindInMap: no ${map}.${key}.${attribute} in the template`);
        }
        return value;
      }
      case 'Fn::Sub': {
        const [text, variables] = typeof argument === 'string' ? [argument, {}] : (argument as [string, { [name: string]: unknown }]);
        return text.replace(/\${([^}]+)}/g, (_match, reference: string) => {
          if (reference in variables) {
            return String(this.resolve(variables[reference]));
          }
          return String(reference.includes('.') ? this.getAtt(...(reference.split('.') as [string, string])) : this.ref(reference));
        });
      }
      default:
        throw new Error(`The template resolver does not support ${name}`);
    }
  }

  private ref(name: string): unknown {
    switch (name) {
      case 'AWS::AccountId':
        return this.env.account;
      case 'AWS::Region':
        return this.env.region;
      case 'AWS::Partition':
        return this.env.partition;
      case 'AWS::URLSuffix':
        return this.env.urlSuffix;
      case 'AWS::StackName':
        return this.env.stackName;
      case 'AWS::StackId':
        return this.stackId;
      case 'AWS::NoValue':
        return NO_VALUE;
    }
    const parameter = this.template.Parameters?.[name];
    if (parameter !== undefined) {
      if (name in this.env.parameters) {
        return this.env.parameters[name];
      }
      if (parameter.Type === 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>') {
        return RESOLVED_AL2023_IMAGE;
      }
      if (parameter.Default !== undefined) {
        return parameter.Default;
      }
      throw new Error(`Parameter ${name} has no value in this deployment`);
    }
    const resource = this.template.Resources[name];
    if (resource === undefined) {
      throw new Error(`Ref ${name}: no such parameter or resource`);
    }
    return this.physicalId(name, resource.Type);
  }

  /** What `Ref` gives for a resource: its id or name, per type (CloudFormation's resource reference). */
  private physicalId(logicalId: string, type: string): string {
    const hex = hash(logicalId);
    const name = `${this.env.stackName}-${logicalId.slice(0, 40)}-${hex.slice(0, 12).toUpperCase()}`;
    switch (type) {
      case 'AWS::S3::Bucket':
        return name.toLowerCase().slice(0, 63);
      case 'AWS::EC2::VPC':
        return `vpc-${hex.slice(0, 17)}`;
      case 'AWS::EC2::Subnet':
        return `subnet-${hex.slice(0, 17)}`;
      case 'AWS::EC2::SecurityGroup':
        return `sg-${hex.slice(0, 17)}`;
      case 'AWS::EC2::Instance':
        return `i-${hex.slice(0, 17)}`;
      case 'AWS::KMS::Key':
        return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
      case 'AWS::IAM::ManagedPolicy':
        return `arn:${this.env.partition}:iam::${this.env.account}:policy/${name}`;
      case 'AWS::StepFunctions::StateMachine':
        return `arn:${this.env.partition}:states:${this.env.region}:${this.env.account}:stateMachine:${name}`;
      default:
        return name;
    }
  }

  private getAtt(logicalId: string, attribute: string): unknown {
    const resource = this.template.Resources[logicalId];
    if (resource === undefined) {
      throw new Error(`Fn::GetAtt ${logicalId}.${attribute}: no such resource`);
    }
    const id = this.physicalId(logicalId, resource.Type);
    const { partition, region, account } = this.env;
    const key = `${resource.Type}.${attribute}`;
    switch (key) {
      case 'AWS::IAM::Role.Arn':
        return `arn:${partition}:iam::${account}:role/${id}`;
      case 'AWS::IAM::InstanceProfile.Arn':
        return `arn:${partition}:iam::${account}:instance-profile/${id}`;
      case 'AWS::KMS::Key.Arn':
        return `arn:${partition}:kms:${region}:${account}:key/${id}`;
      case 'AWS::S3::Bucket.Arn':
        return `arn:${partition}:s3:::${id}`;
      case 'AWS::Logs::LogGroup.Arn':
        return `arn:${partition}:logs:${region}:${account}:log-group:${id}:*`;
      case 'AWS::Lambda::Function.Arn':
        return `arn:${partition}:lambda:${region}:${account}:function:${id}`;
      case 'AWS::EC2::SecurityGroup.GroupId':
        return id;
      case 'AWS::StepFunctions::StateMachine.Arn':
        return id;
      default:
        throw new Error(`The template resolver does not know Fn::GetAtt ${key}`);
    }
  }
}

/** CloudFormation drops a property or list item whose value is Ref AWS::NoValue. */
const NO_VALUE = Symbol('AWS::NoValue');

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
