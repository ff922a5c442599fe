/**
 * Must-deny probes: requests the handler or the helper must never be able to make, judged against
 * the synthesized template's policies exactly as the recorded lifecycle requests are
 * (lifecycle.test.ts). Each probe has an allowed twin that differs from it in the one thing the
 * probe changes (another stack's tag, another instance type, another document, ...): the twin shows
 * that the probe is denied for that reason, not because the request was malformed.
 */
import { buildTags, parseProperties, propertiesHash } from '../../lib/unikernel-ami/handler/properties';
import { BUILD_OWNED_TAG_KEYS, BUILD_RECORD_TAG, HELPER_VOLUMES, IMAGE_USER_TAG_PREFIX, MANAGED_TAG, NAME_TAG, RETAINED_TAG, STACK_ID_TAG, STACK_TAG, UnikernelAmiProperties } from '../../lib/unikernel-ami/types';
import { RecordedRequest, RecordedTag } from '../fixtures/recorded-request';
import { denials, recorded, RequestJudge } from './judge-requests';
import { Proof, synthesizeProofStack } from './proof-stack';
import { Authorization, requestTags } from './request-authorizations';
import { PROOF_ENVIRONMENT, RESOLVED_AL2023_IMAGE } from './template-resolver';

const BUILD_ID = 'mua-0123456789abcdef';
const OTHER_STACK_ID = `arn:aws:cloudformation:${PROOF_ENVIRONMENT.region}:${PROOF_ENVIRONMENT.account}:stack/OtherUnikernels/9d3c1e20-0000-11ef-9e2a-0a1b2c3d4e5f`;
const INSTANCE = 'i-0a1b2c3d4e5f60001';
const VOLUME = 'vol-0a1b2c3d4e5f60002';
const SNAPSHOT = 'snap-0a1b2c3d4e5f60003';
const IMAGE = 'ami-0a1b2c3d4e5f60004';
/** An image other than the helper's, with the same root volume, so that a launch from it differs in the image only. */
const OTHER_HELPER_IMAGE = 'ami-0ffffffffffffffff';

let proof: Proof;
let judge: RequestJudge;
let ours: RecordedTag[];
let theirs: RecordedTag[];
/** Tags of a stack of the same name created before this one and deleted since (its retained AMIs outlive it). */
let earlier: RecordedTag[];
/** Tags a release before the stack-id tag wrote for this stack. */
let beforeStackId: RecordedTag[];
let probesDenied = 0;


type Probe = RecordedRequest | Authorization[];

/**
 * The calls of handler/distribution.ts (and the Delete's turning protection off), each on the AMI
 * or snapshot carrying `tags`: every changing call, and the reads.
 */
const DISTRIBUTION_CALLS: [string, (tags: RecordedTag[]) => RecordedRequest][] = [
  ['ec2:ModifyImageAttribute (launch permissions)', (tags) => recorded('ec2', 'ModifyImageAttribute', { ImageId: IMAGE, LaunchPermission: { Add: [{ UserId: '111122223333' }] } }, withTags(tags, IMAGE))],
  ['ec2:ModifyImageAttribute (description)', (tags) => recorded('ec2', 'ModifyImageAttribute', { ImageId: IMAGE, Description: { Value: 'hello' } }, withTags(tags, IMAGE))],
  ['ec2:ModifySnapshotAttribute', (tags) => recorded('ec2', 'ModifySnapshotAttribute', {
    SnapshotId: SNAPSHOT, Attribute: 'createVolumePermission', CreateVolumePermission: { Add: [{ UserId: '111122223333' }] },
  }, withTags(tags, SNAPSHOT))],
  ['ec2:EnableImageDeprecation', (tags) => recorded('ec2', 'EnableImageDeprecation', { ImageId: IMAGE, DeprecateAt: '2027-03-01T00:00:00Z' }, withTags(tags, IMAGE))],
  ['ec2:DisableImageDeprecation', (tags) => recorded('ec2', 'DisableImageDeprecation', { ImageId: IMAGE }, withTags(tags, IMAGE))],
  ['ec2:EnableImageDeregistrationProtection', (tags) => recorded('ec2', 'EnableImageDeregistrationProtection', { ImageId: IMAGE, WithCooldown: false }, withTags(tags, IMAGE))],
  ['ec2:DisableImageDeregistrationProtection', (tags) => recorded('ec2', 'DisableImageDeregistrationProtection', { ImageId: IMAGE }, withTags(tags, IMAGE))],
  ['ec2:DescribeImageAttribute', (tags) => recorded('ec2', 'DescribeImageAttribute', { ImageId: IMAGE, Attribute: 'launchPermission' }, withTags(tags, IMAGE))],
  ['ec2:DescribeSnapshotAttribute', (tags) => recorded('ec2', 'DescribeSnapshotAttribute', { SnapshotId: SNAPSHOT, Attribute: 'createVolumePermission' }, withTags(tags, SNAPSHOT))],
];

/** The twin is allowed, the probe denied. */
async function expectDenied(twin: Probe, probe: Probe): Promise<void> {
  const judgeProbe = (request: Probe) => Array.isArray(request) ? judge.judgeAll('probe', request) : judge.request(request);
  const allowed = await judgeProbe(twin);
  expect(denials(allowed)).toEqual([]);
  expect(allowed.allowed).toBe(true);
  const denied = await judgeProbe(probe);
  expect(denied.allowed).toBe(false);
  probesDenied++;
}

function withTags(tags: readonly RecordedTag[], ...ids: string[]): { [id: string]: readonly RecordedTag[] } {
  return Object.fromEntries(ids.map((id) => [id, tags]));
}

function without(tags: readonly RecordedTag[], key: string): RecordedTag[] {
  return tags.filter((tag) => tag.Key !== key);
}

/** The helper's volumes as the handler maps them (HelperEncrypted: its 1 GiB data volume with its key, AL2023's root). */
function volumes(data: { [key: string]: unknown } = {}, root: { [key: string]: unknown } = {}): { [key: string]: unknown }[] {
  const helper = proof.properties.HelperEncrypted;
  return [
    {
      DeviceName: HELPER_VOLUMES.dataDeviceName,
      Ebs: { VolumeSize: Number(helper.VolumeSizeGiB), VolumeType: HELPER_VOLUMES.volumeType, DeleteOnTermination: true, Encrypted: true, KmsKeyId: helper.KmsKeyArn, ...data },
    },
    { DeviceName: HELPER_VOLUMES.rootDeviceName, Ebs: { VolumeSize: HELPER_VOLUMES.rootSizeGiB, VolumeType: HELPER_VOLUMES.volumeType, DeleteOnTermination: true, ...root } },
  ];
}

function runInstances(overrides: { [key: string]: unknown } = {}): RecordedRequest {
  const helper = proof.properties.HelperEncrypted.Helper!;
  return recorded('ec2', 'RunInstances', {
    ClientToken: BUILD_ID,
    ImageId: helper.ImageId,
    InstanceType: helper.InstanceType,
    MinCount: 1,
    MaxCount: 1,
    SubnetId: helper.SubnetId,
    SecurityGroupIds: [helper.SecurityGroupId],
    IamInstanceProfile: { Arn: helper.InstanceProfileArn },
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
    InstanceInitiatedShutdownBehavior: 'terminate',
    BlockDeviceMappings: volumes(),
    TagSpecifications: ['instance', 'volume', 'network-interface'].map((ResourceType) => ({ ResourceType, Tags: ours })),
    ...overrides,
  });
}

function createVolume(overrides: { [key: string]: unknown } = {}): RecordedRequest {
  return recorded('ec2', 'CreateVolume', {
    ClientToken: `${BUILD_ID}-volume`,
    AvailabilityZone: 'us-east-1a',
    Size: 1,
    VolumeType: 'gp3',
    TagSpecifications: [{ ResourceType: 'volume', Tags: ours }],
    ...overrides,
  });
}

function sendCommand(documentName: string, tags: readonly RecordedTag[]): RecordedRequest {
  return recorded('ssm', 'SendCommand', { DocumentName: documentName, InstanceIds: [INSTANCE], Comment: BUILD_ID, Parameters: { commands: ['true'] } },
    withTags(tags, INSTANCE));
}

function startSnapshot(overrides: { [key: string]: unknown } = {}): RecordedRequest {
  return recorded('ebs', 'StartSnapshot', { VolumeSize: 1, ClientToken: `${BUILD_ID}-ebs-direct`, Tags: ours, Timeout: 60, ...overrides });
}

/** A request of the helper instance (its SSM agent) as the fake records it. */
function recordedHelper(service: RecordedRequest['service'], action: string, input: { [key: string]: unknown }, resourceTags: { [id: string]: readonly RecordedTag[] }): RecordedRequest {
  return { ...recorded(service, action, input, resourceTags), principal: 'helper-instance', instanceId: INSTANCE };
}

function check(caller: 'handler' | 'helper', action: string, resource: string, context: Authorization['context'] = {}): Authorization[] {
  return [{ caller, action, resource, context, description: 'probe' }];
}

// Once as synthesized, once with the policy minimization many apps turn on (cdk.json of this repository too).
describe.each([['as synthesized', false], ['with @aws-cdk/aws-iam:minimizePolicies', true]])('the stack %s', (_variant, minimizePolicies) => {
  afterAll(() => {
    // The figure docs/security.md quotes.
    console.log(`IAM proof (${_variant}): ${probesDenied} must-deny probes denied, each with its allowed twin allowed`);
  });

  beforeAll(() => {
    probesDenied = 0;
    proof = synthesizeProofStack({ minimizePolicies });
    const imageRootVolumes = proof.authorization.imageRootVolumes;
    judge = new RequestJudge({
      ...proof,
      authorization: { ...proof.authorization, imageRootVolumes: { ...imageRootVolumes, [OTHER_HELPER_IMAGE]: imageRootVolumes[RESOLVED_AL2023_IMAGE] } },
    });
    const properties: UnikernelAmiProperties = proof.properties.HelperEncrypted;
    const identity = { buildId: BUILD_ID, logicalId: proof.logicalIds.HelperEncrypted, propertiesHash: propertiesHash(properties) };
    ours = buildTags({ ...identity, stackId: proof.resolver.stackId }, parseProperties(properties));
    theirs = buildTags({ ...identity, stackId: OTHER_STACK_ID }, parseProperties(properties));
    earlier = buildTags({ ...identity, stackId: proof.resolver.stackId.replace(/[^/]+$/, '7e4a2d30-0000-11ef-9e2a-0a1b2c3d4e5f') }, parseProperties(properties));
    beforeStackId = without(ours, STACK_ID_TAG);
  });

  describe('another stack\'s resources are out of reach', () => {
    test.each([
      ['TerminateInstances', INSTANCE, (id: string) => ({ InstanceIds: [id] })],
      ['DeleteVolume', VOLUME, (id: string) => ({ VolumeId: id })],
      ['CreateSnapshot', VOLUME, (id: string) => ({ VolumeId: id, TagSpecifications: [{ ResourceType: 'snapshot', Tags: [] }] })],
      ['DeleteSnapshot', SNAPSHOT, (id: string) => ({ SnapshotId: id })],
      ['DeregisterImage', IMAGE, (id: string) => ({ ImageId: id })],
    ])('ec2:%s on another stack\'s resource', async (action, id, input) => {
      const inputOf = input as (id: string) => { [key: string]: unknown };
      const ownTags = { ...withTags(ours, id, INSTANCE) };
      const tagSpecifications = action === 'CreateSnapshot' ? { TagSpecifications: [{ ResourceType: 'snapshot', Tags: ours }] } : {};
      await expectDenied(
        recorded('ec2', action, { ...inputOf(id), ...tagSpecifications }, ownTags),
        recorded('ec2', action, { ...inputOf(id), ...tagSpecifications }, { ...ownTags, ...withTags(theirs, id) }),
      );
    });

    test('ssm:SendCommand to another stack\'s helper', async () => {
      await expectDenied(sendCommand('AWS-RunShellScript', ours), sendCommand('AWS-RunShellScript', theirs));
    });

    test.each(['PutSnapshotBlock', 'CompleteSnapshot'])('ebs:%s into another stack\'s snapshot', async (action) => {
      await expectDenied(
        recorded('ebs', action, { SnapshotId: SNAPSHOT, BlockIndex: 0 }, withTags(ours, SNAPSHOT)),
        recorded('ebs', action, { SnapshotId: SNAPSHOT, BlockIndex: 0 }, withTags(theirs, SNAPSHOT)),
      );
    });

    test('tagging another stack\'s AMI or snapshot with our tags (to claim it)', async () => {
      await expectDenied(
        recorded('ec2', 'CreateTags', { Resources: [IMAGE, SNAPSHOT], Tags: ours }, withTags(ours, IMAGE, SNAPSHOT)),
        recorded('ec2', 'CreateTags', { Resources: [IMAGE, SNAPSHOT], Tags: ours }, withTags(theirs, IMAGE, SNAPSHOT)),
      );
    });

    test('handing our AMI to another stack by re-tagging it', async () => {
      await expectDenied(
        recorded('ec2', 'CreateTags', { Resources: [IMAGE], Tags: ours }, withTags(ours, IMAGE)),
        recorded('ec2', 'CreateTags', { Resources: [IMAGE], Tags: theirs }, withTags(ours, IMAGE)),
      );
    });

    test('a build of a library version that wrote only the managed tag, or only the stack name (before the stack-id tag)', async () => {
      await expectDenied(
        recorded('ec2', 'DeregisterImage', { ImageId: IMAGE }, withTags(ours, IMAGE)),
        recorded('ec2', 'DeregisterImage', { ImageId: IMAGE }, withTags(without(without(ours, STACK_TAG), STACK_ID_TAG), IMAGE)),
      );
      await expectDenied(
        recorded('ec2', 'DeregisterImage', { ImageId: IMAGE }, withTags(ours, IMAGE)),
        recorded('ec2', 'DeregisterImage', { ImageId: IMAGE }, withTags(beforeStackId, IMAGE)),
      );
    });
  });

  describe('every request of a build that creates, changes, tags or deletes: denied untagged, for another stack, and for an earlier stack of the same name', () => {
    type Make = (tags: RecordedTag[]) => Probe;
    const registerImage = (requestTags: RecordedTag[], snapshotTags: RecordedTag[]) => recorded('ec2', 'RegisterImage', {
      Name: 'hello', BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { SnapshotId: SNAPSHOT } }], TagSpecifications: [{ ResourceType: 'image', Tags: requestTags }],
    }, withTags(snapshotTags, SNAPSHOT));
    const createSnapshot = (requestTags: RecordedTag[], volumeTags: RecordedTag[]) => recorded('ec2', 'CreateSnapshot',
      { VolumeId: VOLUME, TagSpecifications: [{ ResourceType: 'snapshot', Tags: requestTags }] }, withTags(volumeTags, VOLUME));
    const requests: [string, Make][] = [
      ['ec2:RunInstances (its tags)', (tags) => runInstances({ TagSpecifications: ['instance', 'volume', 'network-interface'].map((ResourceType) => ({ ResourceType, Tags: tags })) })],
      ['ec2:CreateSnapshot (its tags)', (tags) => createSnapshot(tags, ours)],
      ['ec2:CreateSnapshot (the volume it reads)', (tags) => createSnapshot(ours, tags)],
      ['ec2:RegisterImage (its tags)', (tags) => registerImage(tags, ours)],
      ['ec2:RegisterImage (the snapshot it boots from)', (tags) => registerImage(ours, tags)],
      ['ec2:CreateTags (a tag-only update)', (tags) => recorded('ec2', 'CreateTags', { Resources: [IMAGE, SNAPSHOT], Tags: [...ours, { Key: 'owner', Value: 'ops' }] }, withTags(tags, IMAGE, SNAPSHOT))],
      ['ec2:CreateTags (the retained mark)', (tags) => recorded('ec2', 'CreateTags', { Resources: [IMAGE, SNAPSHOT], Tags: [{ Key: RETAINED_TAG, Value: 'true' }] }, withTags(tags, IMAGE, SNAPSHOT))],
      ['ec2:DeleteTags', (tags) => recorded('ec2', 'DeleteTags', { Resources: [IMAGE, SNAPSHOT], Tags: [{ Key: 'owner' }] }, withTags(tags, IMAGE, SNAPSHOT))],
      ['ec2:DeregisterImage', (tags) => recorded('ec2', 'DeregisterImage', { ImageId: IMAGE }, withTags(tags, IMAGE))],
      ['ec2:DeleteSnapshot', (tags) => recorded('ec2', 'DeleteSnapshot', { SnapshotId: SNAPSHOT }, withTags(tags, SNAPSHOT))],
      ['ec2:TerminateInstances', (tags) => recorded('ec2', 'TerminateInstances', { InstanceIds: [INSTANCE] }, withTags(tags, INSTANCE))],
      ['ec2:DeleteVolume', (tags) => recorded('ec2', 'DeleteVolume', { VolumeId: VOLUME }, withTags(tags, VOLUME))],
      ['ebs:StartSnapshot', (tags) => startSnapshot({ Tags: tags })],
      ['ebs:PutSnapshotBlock', (tags) => recorded('ebs', 'PutSnapshotBlock', { SnapshotId: SNAPSHOT, BlockIndex: 0 }, withTags(tags, SNAPSHOT))],
      ['ebs:CompleteSnapshot', (tags) => recorded('ebs', 'CompleteSnapshot', { SnapshotId: SNAPSHOT }, withTags(tags, SNAPSHOT))],
      // Reading a snapshot back (a repeated EBS-direct build checks one it did not complete): the
      // blocks of another stack's, or anybody's untagged, snapshot are not this build's to read.
      ['ebs:ListSnapshotBlocks', (tags) => recorded('ebs', 'ListSnapshotBlocks', { SnapshotId: SNAPSHOT }, withTags(tags, SNAPSHOT))],
      ['ebs:GetSnapshotBlock', (tags) => recorded('ebs', 'GetSnapshotBlock', { SnapshotId: SNAPSHOT, BlockIndex: 0, BlockToken: 'token' }, withTags(tags, SNAPSHOT))],
      ['ec2:CreateTags (the build record)', (tags) => recorded('ec2', 'CreateTags', { Resources: [IMAGE, SNAPSHOT], Tags: [{ Key: BUILD_RECORD_TAG, Value: 'v=1 outcome=complete' }] }, withTags(tags, IMAGE, SNAPSHOT))],
      ['ssm:SendCommand', (tags) => sendCommand('AWS-RunShellScript', tags)],
      // What the AMI offers beyond its disk (issue 17), and a rename's mark on the snapshot it reuses.
      ...DISTRIBUTION_CALLS.map(([name, make]) => [name, (tags: RecordedTag[]) => make(tags)] as [string, Make]),
      ['ec2:CreateTags (a rename\'s mark on the snapshot)', (tags) => recorded('ec2', 'CreateTags', { Resources: [SNAPSHOT], Tags: [{ Key: `${IMAGE_USER_TAG_PREFIX}${BUILD_ID}`, Value: IMAGE }] }, withTags(tags, SNAPSHOT))],
    ];
    test.each(requests)('%s', async (_name, make) => {
      await expectDenied(make(ours), make([]));
      await expectDenied(make(ours), make(theirs));
      await expectDenied(make(ours), make(earlier));
    });
  });

  describe('retained AMIs and snapshots', () => {
    const retained = () => [...ours, { Key: RETAINED_TAG, Value: 'true' }];
    test.each([
      ['ec2:DeregisterImage', (tags: RecordedTag[]) => recorded('ec2', 'DeregisterImage', { ImageId: IMAGE }, withTags(tags, IMAGE))],
      ['ec2:DeleteSnapshot', (tags: RecordedTag[]) => recorded('ec2', 'DeleteSnapshot', { SnapshotId: SNAPSHOT }, withTags(tags, SNAPSHOT))],
      ['ec2:CreateTags', (tags: RecordedTag[]) => recorded('ec2', 'CreateTags', { Resources: [IMAGE, SNAPSHOT], Tags: [{ Key: 'owner', Value: 'ops' }] }, withTags(tags, IMAGE, SNAPSHOT))],
      ['ec2:CreateTags of the retained mark', (tags: RecordedTag[]) => recorded('ec2', 'CreateTags', { Resources: [IMAGE], Tags: [{ Key: RETAINED_TAG, Value: 'false' }] }, withTags(tags, IMAGE))],
      ['ec2:DeleteTags', (tags: RecordedTag[]) => recorded('ec2', 'DeleteTags', { Resources: [IMAGE, SNAPSHOT], Tags: [{ Key: 'owner' }] }, withTags(tags, IMAGE, SNAPSHOT))],
      // Who may launch it, read its disk, when it deprecates, whether it is protected: the user's now.
      ...DISTRIBUTION_CALLS.filter(([name]) => !name.includes('Describe')),
    ])('%s on this stack\'s retained AMI or snapshot', async (_name, make) => {
      await expectDenied(make(ours), make(retained()));
    });
  });

  test('ec2:DeleteTags of a rename\'s mark on a snapshot (the snapshot would lose its last user\'s protection)', async () => {
    const untag = (key: string) => recorded('ec2', 'DeleteTags', { Resources: [SNAPSHOT], Tags: [{ Key: key }] }, withTags(ours, SNAPSHOT));
    await expectDenied(untag('owner'), untag(`${IMAGE_USER_TAG_PREFIX}${BUILD_ID}`));
  });

  describe('migrating what a release before the stack-id tag built', () => {
    const ourId = () => [{ Key: STACK_ID_TAG, Value: proof.resolver.stackId }];
    const migrate = (resourceTags: RecordedTag[], tags: RecordedTag[] = ourId(), ids = [IMAGE, SNAPSHOT]) =>
      recorded('ec2', 'CreateTags', { Resources: ids, Tags: tags }, withTags(resourceTags, ...ids));

    test('adds this stack\'s id to an AMI, snapshot, instance or volume of this stack\'s name; nothing else', async () => {
      const twin = migrate(beforeStackId);
      await expectDenied(twin, migrate([]));
      await expectDenied(twin, migrate(without(theirs, STACK_ID_TAG)));
      await expectDenied(twin, migrate(theirs));
      await expectDenied(twin, migrate(earlier));
      await expectDenied(twin, migrate([...beforeStackId, { Key: RETAINED_TAG, Value: 'true' }]));
      await expectDenied(twin, migrate(without(beforeStackId, MANAGED_TAG)));
      await expectDenied(twin, migrate(beforeStackId, [...ourId(), { Key: 'owner', Value: 'ops' }]));
      await expectDenied(twin, migrate(beforeStackId, [{ Key: STACK_ID_TAG, Value: OTHER_STACK_ID }]));
      const helperTwin = migrate(beforeStackId, ourId(), [INSTANCE, VOLUME]);
      await expectDenied(helperTwin, migrate(without(theirs, STACK_ID_TAG), ourId(), [INSTANCE, VOLUME]));
      await expectDenied(helperTwin, migrate([], ourId(), [INSTANCE, VOLUME]));
    });
  });

  describe('StartSnapshot\'s tag authorization (the documented residual)', () => {
    const claim = (resourceTags: RecordedTag[], volumeSize: string) => check('handler', 'ec2:CreateTags', judge.authorizations.arnOf(SNAPSHOT), {
      ...requestTags(ours),
      'ec2:VolumeSize': volumeSize,
      ...Object.fromEntries(resourceTags.flatMap((tag) => [[`ec2:ResourceTag/${tag.Key}`, tag.Value], [`aws:ResourceTag/${tag.Key}`, tag.Value]])),
    });

    test('a CreateTags without ec2:CreateAction can give our tags to an existing snapshot only if it carries no build tag and has an EBS-direct size', async () => {
      // The residual: IAM cannot tell it from StartSnapshot's own tagging (docs/security.md).
      const residual = claim([{ Key: NAME_TAG, Value: 'backup' }], '1');
      await expectDenied(residual, claim([], '16'));
      await expectDenied(residual, claim([], '2'));
      for (const key of BUILD_OWNED_TAG_KEYS.filter((k) => k !== NAME_TAG)) {
        await expectDenied(residual, claim([{ Key: key, Value: 'x' }], '1'));
      }
      await expectDenied(residual, claim(theirs, '1'));
      await expectDenied(residual, claim(earlier, '1'));
      await expectDenied(residual, claim(beforeStackId, '1'));
      await expectDenied(residual, check('handler', 'ec2:CreateTags', judge.authorizations.arnOf(SNAPSHOT), { ...requestTags(theirs), 'ec2:VolumeSize': '1' }));
    });
  });

  describe('untagged resources are out of reach', () => {
    test.each([
      ['ec2', 'TerminateInstances', { InstanceIds: [INSTANCE] }, INSTANCE],
      ['ec2', 'DeleteVolume', { VolumeId: VOLUME }, VOLUME],
      ['ec2', 'DeleteSnapshot', { SnapshotId: SNAPSHOT }, SNAPSHOT],
      ['ec2', 'DeregisterImage', { ImageId: IMAGE }, IMAGE],
      ['ec2', 'DeleteTags', { Resources: [IMAGE], Tags: [{ Key: 'project' }] }, IMAGE],
      ['ebs', 'PutSnapshotBlock', { SnapshotId: SNAPSHOT, BlockIndex: 0 }, SNAPSHOT],
      ['ssm', 'SendCommand', { DocumentName: 'AWS-RunShellScript', InstanceIds: [INSTANCE] }, INSTANCE],
    ] as const)('%s:%s on an untagged resource', async (service, action, input, id) => {
      await expectDenied(recorded(service, action, input, withTags(ours, id)), recorded(service, action, input, withTags([], id)));
    });

    test('creating a volume, snapshot or AMI without our tags', async () => {
      const specifications = (types: string[]) => types.map((ResourceType) => ({ ResourceType, Tags: ours }));
      await expectDenied(runInstances(), runInstances({ TagSpecifications: specifications(['instance', 'network-interface']) }));
      await expectDenied(
        recorded('ec2', 'CreateSnapshot', { VolumeId: VOLUME, TagSpecifications: [{ ResourceType: 'snapshot', Tags: ours }] }, withTags(ours, VOLUME)),
        recorded('ec2', 'CreateSnapshot', { VolumeId: VOLUME }, withTags(ours, VOLUME)),
      );
      const register = (tags: RecordedTag[]) => recorded('ec2', 'RegisterImage', {
        Name: 'hello', BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { SnapshotId: SNAPSHOT } }], TagSpecifications: [{ ResourceType: 'image', Tags: tags }],
      }, withTags(ours, SNAPSHOT));
      await expectDenied(register(ours), register(theirs));
      await expectDenied(startSnapshot(), startSnapshot({ Tags: theirs }));
    });

    test('an AMI from a snapshot that is not ours', async () => {
      const register = (snapshotTags: RecordedTag[]) => recorded('ec2', 'RegisterImage', {
        Name: 'hello', BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { SnapshotId: SNAPSHOT } }], TagSpecifications: [{ ResourceType: 'image', Tags: ours }],
      }, withTags(snapshotTags, SNAPSHOT));
      await expectDenied(register(ours), register([]));
    });
  });

  describe('only a helper can be launched', () => {
    test('another instance type', async () => {
      await expectDenied(runInstances(), runInstances({ InstanceType: 'm5.large' }));
      // t1.micro is allowed only because HelperT1 asks for it.
      await expectDenied(runInstances({ InstanceType: 't1.micro' }), runInstances({ InstanceType: 't2.micro' }));
    });

    test('without IMDSv2', async () => {
      await expectDenied(runInstances(), runInstances({ MetadataOptions: { HttpTokens: 'optional', HttpEndpoint: 'enabled' } }));
      await expectDenied(runInstances(), runInstances({ MetadataOptions: undefined }));
    });

    test('with a key pair (SSH)', async () => {
      await expectDenied(runInstances(), runInstances({ KeyName: 'my-key' }));
    });

    test('from another image, or in another subnet or security group', async () => {
      await expectDenied(runInstances(), runInstances({ ImageId: OTHER_HELPER_IMAGE }));
      await expectDenied(runInstances(), runInstances({ SubnetId: 'subnet-0ffffffffffffffff' }));
      await expectDenied(runInstances(), runInstances({ SecurityGroupIds: ['sg-0ffffffffffffffff'] }));
    });

    test('untagged, or tagged for another stack', async () => {
      await expectDenied(runInstances(), runInstances({ TagSpecifications: [] }));
      await expectDenied(runInstances(), runInstances({ TagSpecifications: ['instance', 'volume', 'network-interface'].map((ResourceType) => ({ ResourceType, Tags: theirs })) }));
    });

    test('a PassRole of another role, or of the helper role to another service', async () => {
      const helperRole = proof.helper!.arn;
      const otherRole = `arn:aws:iam::${PROOF_ENVIRONMENT.account}:role/Administrator`;
      await expectDenied(
        check('handler', 'iam:PassRole', helperRole, { 'iam:PassedToService': 'ec2.amazonaws.com' }),
        check('handler', 'iam:PassRole', otherRole, { 'iam:PassedToService': 'ec2.amazonaws.com' }),
      );
      await expectDenied(
        check('handler', 'iam:PassRole', helperRole, { 'iam:PassedToService': 'ec2.amazonaws.com' }),
        check('handler', 'iam:PassRole', helperRole, { 'iam:PassedToService': 'lambda.amazonaws.com' }),
      );
    });
  });

  describe('volumes and snapshots of what a build makes only', () => {
    test('a launch that would create a volume of another type', async () => {
      await expectDenied(runInstances(), runInstances({ BlockDeviceMappings: volumes({ VolumeType: 'io2' }) }));
      await expectDenied(runInstances(), runInstances({ BlockDeviceMappings: volumes({}, { VolumeType: 'gp2' }) }));
      // Without a mapping of the root device, the root is as the image maps it (gp3 for AL2023, allowed).
      await expectDenied(runInstances({ BlockDeviceMappings: volumes().slice(0, 1) }), runInstances({ BlockDeviceMappings: [...volumes().slice(0, 1), { DeviceName: '/dev/sdg', Ebs: { VolumeSize: 1, VolumeType: 'st1' } }] }));
    });

    test('a launch whose data volume is larger than any helper unikernel of the stack has, or whose root is larger than AL2023\'s', async () => {
      // HelperT1 has 2 GiB, so 2 GiB is allowed; 3 GiB only an EBS-direct unikernel has.
      await expectDenied(runInstances({ BlockDeviceMappings: volumes({ VolumeSize: 2 }) }), runInstances({ BlockDeviceMappings: volumes({ VolumeSize: 16 }) }));
      await expectDenied(runInstances({ BlockDeviceMappings: volumes({ VolumeSize: 2 }) }), runInstances({ BlockDeviceMappings: volumes({ VolumeSize: 3 }) }));
      await expectDenied(runInstances(), runInstances({ BlockDeviceMappings: volumes({}, { VolumeSize: 30 }) }));
      await expectDenied(runInstances(), runInstances({ BlockDeviceMappings: [...volumes(), { DeviceName: '/dev/sdg', Ebs: { VolumeSize: 500, VolumeType: 'gp3' } }] }));
    });

    test('a volume outside a launch (CreateVolume, as builds of earlier versions made)', async () => {
      await expectDenied(runInstances(), createVolume());
    });

    test('a larger snapshot than any EBS-direct unikernel of the stack has', async () => {
      await expectDenied(startSnapshot({ VolumeSize: 3 }), startSnapshot({ VolumeSize: 4 }));
      // 2 GiB only a helper unikernel has.
      await expectDenied(startSnapshot({ VolumeSize: 1 }), startSnapshot({ VolumeSize: 2 }));
    });
  });

  describe('SSM Run Command', () => {
    test('another SSM document', async () => {
      await expectDenied(sendCommand('AWS-RunShellScript', ours), sendCommand('AWS-RunPowerShellScript', ours));
      await expectDenied(sendCommand('AWS-RunShellScript', ours), sendCommand('MyAccountDocument', ours));
    });
  });

  describe('tags the build relies on', () => {
    test('DeleteTags never removes the build\'s own tags, nor all tags at once', async () => {
      const deleteTags = (tags?: { Key: string }[]) => recorded('ec2', 'DeleteTags', { Resources: [IMAGE, SNAPSHOT], Tags: tags }, withTags(ours, IMAGE, SNAPSHOT));
      expect(BUILD_OWNED_TAG_KEYS).toEqual(expect.arrayContaining(['mirage-unikernel-ami:resource', 'mirage-unikernel-ami:properties', 'mirage-unikernel-ami:retained']));
      for (const key of BUILD_OWNED_TAG_KEYS) {
        await expectDenied(deleteTags([{ Key: 'owner' }]), deleteTags([{ Key: 'owner' }, { Key: key }]));
      }
      await expectDenied(deleteTags([{ Key: 'owner' }]), deleteTags(undefined));
    });

    test('the StartSnapshot tagging statement cannot tag an existing snapshot of another stack', async () => {
      const tagOnStart = (resourceTags: RecordedTag[]) => check('handler', 'ec2:CreateTags', judge.authorizations.arnOf(SNAPSHOT), {
        ...Object.fromEntries(ours.map((tag) => [`aws:RequestTag/${tag.Key}`, tag.Value])),
        'aws:TagKeys': ours.map((tag) => tag.Key),
        ...Object.fromEntries(resourceTags.flatMap((tag) => [[`ec2:ResourceTag/${tag.Key}`, tag.Value], [`aws:ResourceTag/${tag.Key}`, tag.Value]])),
      });
      await expectDenied(tagOnStart([]), tagOnStart(theirs));
    });
  });

  describe('S3 objects outside the kernels and the staging keys', () => {
    test('the handler reads only the kernels, and writes and deletes only under builds/ of the staging bucket', async () => {
      const kernel = proof.properties.HelperEncrypted;
      const staging = kernel.StagingBucket!;
      await expectDenied(
        recorded('s3', 'GetObject', { Bucket: kernel.KernelBucket, Key: kernel.KernelKey }),
        recorded('s3', 'GetObject', { Bucket: kernel.KernelBucket, Key: 'someone-elses/secret.txt' }),
      );
      const fromBucket = proof.properties.DirectFromBucket;
      await expectDenied(
        recorded('s3', 'GetObject', { Bucket: fromBucket.KernelBucket, Key: fromBucket.KernelKey, VersionId: fromBucket.KernelObjectVersion }),
        recorded('s3', 'GetObject', { Bucket: fromBucket.KernelBucket, Key: 'kernels/other.xen', VersionId: fromBucket.KernelObjectVersion }),
      );
      await expectDenied(
        recorded('s3', 'PutObject', { Bucket: staging, Key: `builds/${BUILD_ID}/blocks.gz` }),
        recorded('s3', 'PutObject', { Bucket: staging, Key: 'index.html' }),
      );
      // It reads back what it staged (progress, and the staged image through the URLs it presigns), nothing else of the bucket.
      await expectDenied(
        recorded('s3', 'GetObject', { Bucket: staging, Key: `builds/${BUILD_ID}/blocks.gz` }),
        recorded('s3', 'GetObject', { Bucket: staging, Key: 'index.html' }),
      );
      // It may learn that an object of the staging bucket does not exist, of no other bucket.
      const missing = (bucket: string, key: string) => ({ ...recorded('s3', 'GetObject', { Bucket: bucket, Key: key }), error: 'NoSuchKey' });
      await expectDenied(missing(staging, `builds/${BUILD_ID}/progress.json`), missing(kernel.KernelBucket, kernel.KernelKey));
    });

    test('the helper\'s role reads nothing of S3: not another build\'s staged object, not even its own (it gets presigned URLs)', async () => {
      const objectArn = (bucket: string, key: string) => judge.authorizations.objectArn(bucket, key);
      const staging = proof.properties.HelperEncrypted.StagingBucket!;
      const overTls = { 'aws:SecureTransport': 'true' };
      // What the helper's download of its own build's object is: a GET presigned by the handler.
      const presigned: RecordedRequest = { ...recorded('s3', 'GetObject', { Bucket: staging, Key: `builds/${BUILD_ID}/manifest.txt` }), principal: 'presigned-url', instanceId: INSTANCE };
      const otherBuild = 'mua-fedcba9876543210';
      await expectDenied(presigned, check('helper', 's3:GetObject', objectArn(staging, `builds/${otherBuild}/blocks.gz`), overTls));
      await expectDenied(presigned, check('helper', 's3:GetObject', objectArn(staging, `builds/${BUILD_ID}/manifest.txt`), overTls));
      await expectDenied(presigned, check('helper', 's3:GetObject', objectArn(proof.properties.HelperEncrypted.KernelBucket, proof.properties.HelperEncrypted.KernelKey), overTls));
      await expectDenied(presigned, check('helper', 's3:PutObject', objectArn(staging, `builds/${BUILD_ID}/manifest.txt`), overTls));
    });

    test('the staging bucket refuses plain HTTP, whatever the role allows', async () => {
      const staging = proof.properties.HelperEncrypted.StagingBucket!;
      // (as the helper's presigned downloads are authorized: as the handler role)
      const read = (secureTransport: string) => check('handler', 's3:GetObject', judge.authorizations.objectArn(staging, `builds/${BUILD_ID}/blocks.gz`),
        { 'aws:SecureTransport': secureTransport });
      await expectDenied(read('true'), read('false'));
    });
  });

  describe('the helper instance\'s role holds only what its SSM agent and script need', () => {
    test('no parameters, no commands, no EC2 changes', async () => {
      const heartbeat = recordedHelper('ssm', 'UpdateInstanceInformation', { InstanceId: INSTANCE }, withTags(ours, INSTANCE));
      await expectDenied(heartbeat, check('helper', 'ssm:GetParameter', `arn:aws:ssm:${PROOF_ENVIRONMENT.region}:${PROOF_ENVIRONMENT.account}:parameter/prod/database-password`));
      await expectDenied(heartbeat, check('helper', 'ssm:SendCommand', judge.authorizations.documentArn('AWS-RunShellScript')));
      await expectDenied(heartbeat, check('helper', 'ec2:TerminateInstances', judge.authorizations.arnOf(INSTANCE), { 'ec2:ResourceTag/mirage-unikernel-ami:managed': 'true' }));
    });

    test('no Session Manager data channels, no ec2messages:GetEndpoint', async () => {
      const control = check('helper', 'ssmmessages:OpenControlChannel', '*');
      for (const action of ['ssmmessages:CreateDataChannel', 'ssmmessages:OpenDataChannel', 'ec2messages:GetEndpoint']) {
        await expectDenied(control, check('helper', action, '*'));
      }
    });

    test('the calls that carry ec2:SourceInstanceARN only from an instance of this account and region', async () => {
      const source = { 'ec2:SourceInstanceARN': judge.authorizations.arnOf(INSTANCE) };
      const heartbeat = (context: Authorization['context']) => check('helper', 'ssm:UpdateInstanceInformation', judge.authorizations.arnOf(INSTANCE), context);
      await expectDenied(heartbeat(source), heartbeat({}));
      await expectDenied(heartbeat(source), heartbeat({ 'ec2:SourceInstanceARN': `arn:aws:ec2:eu-west-1:${PROOF_ENVIRONMENT.account}:instance/${INSTANCE}` }));
      for (const action of ['ssmmessages:CreateControlChannel', 'ec2messages:GetMessages', 'ec2messages:SendReply']) {
        await expectDenied(check('helper', action, '*', source), check('helper', action, '*'));
        await expectDenied(check('helper', action, '*', source),
          check('helper', action, '*', { 'ec2:SourceInstanceARN': `arn:aws:ec2:${PROOF_ENVIRONMENT.region}:111122223333:instance/${INSTANCE}` }));
      }
    });
  });

  describe('encryption keys', () => {
    test('helper builds use the key only through EC2; the key of no unikernel is not usable', async () => {
      const keyArn = proof.properties.HelperEncrypted.KmsKeyArn!;
      const viaEc2 = { 'kms:ViaService': `ec2.${PROOF_ENVIRONMENT.region}.amazonaws.com`, 'kms:CallerAccount': PROOF_ENVIRONMENT.account };
      const otherKey = `arn:aws:kms:${PROOF_ENVIRONMENT.region}:${PROOF_ENVIRONMENT.account}:key/11111111-2222-3333-4444-555555555555`;
      await expectDenied(runInstances(), runInstances({ BlockDeviceMappings: volumes({ KmsKeyId: otherKey }) }));
      await expectDenied(
        check('handler', 'kms:CreateGrant', keyArn, { ...viaEc2, 'kms:GrantIsForAWSResource': 'true' }),
        check('handler', 'kms:CreateGrant', keyArn, { ...viaEc2, 'kms:GrantIsForAWSResource': 'false' }),
      );
    });
  });
});
