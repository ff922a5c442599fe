import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Lazy, RemovalPolicy, Size, Tags } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { DiskLayout, KernelArchitecture, MirageUnikernelAmi, MirageUnikernelAmiProps, UnikernelKernel } from '../../lib';
import { maxKernelBytes } from '../../lib/disk-image';
import { handlerStatements, kernelFixture, newStack, PV_I386_KERNEL, PV_X86_64_KERNEL, statementsAllowing } from '../fixtures/construct';

const CUSTOM_RESOURCE = 'Custom::MirageUnikernelAmi';

function helloProps(overrides: Partial<MirageUnikernelAmiProps> = {}): MirageUnikernelAmiProps {
  return { kernel: UnikernelKernel.fromFile(PV_X86_64_KERNEL), name: 'hello', ...overrides };
}

function customResourceProperties(template: Template): { [key: string]: unknown } {
  const resources = Object.values(template.findResources(CUSTOM_RESOURCE));
  expect(resources).toHaveLength(1);
  return resources[0].Properties;
}

describe('the custom resource', () => {
  test('carries the kernel asset and the defaults as string properties', () => {
    // GIVEN
    const stack = newStack();
    // WHEN
    new MirageUnikernelAmi(stack, 'Hello', helloProps());
    // THEN
    const template = Template.fromStack(stack);
    template.hasResource(CUSTOM_RESOURCE, {
      Properties: {
        KernelBucket: { 'Fn::Sub': Match.stringLikeRegexp('assets') },
        KernelKey: Match.stringLikeRegexp('^[0-9a-f]{64}\\.elf$'),
        KernelObjectVersion: Match.absent(),
        Name: 'hello',
        KernelArgs: '',
        Layout: 'whole',
        VolumeSizeGiB: '1',
        Architecture: 'x86_64',
        Encrypted: 'false',
        KmsKeyArn: Match.absent(),
        RemovalPolicy: 'destroy',
        Strategy: 'helper-instance',
        Tags: Match.absent(),
      },
      // CloudFormation must always send Delete, so the handler can clean up after any build.
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
    });
  });

  test('another kernel file is another object, so a new kernel makes a new build', () => {
    const keyOf = (file: string) => {
      const stack = newStack();
      new MirageUnikernelAmi(stack, 'Hello', helloProps({ kernel: UnikernelKernel.fromFile(file) }));
      return customResourceProperties(Template.fromStack(stack)).KernelKey;
    };
    expect(keyOf(PV_X86_64_KERNEL)).toBe(keyOf(PV_X86_64_KERNEL));
    expect(keyOf(PV_X86_64_KERNEL)).not.toBe(keyOf(kernelFixture('pv-x86_64-section-notes.elf')));
  });

  test('passes name, arguments, layout and size', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps({
      name: 'web-1.0',
      kernelArgs: '--ipv4=10.0.0.2/24 --hello="a b"',
      layout: DiskLayout.MBR_PARTITION,
      volumeSize: Size.gibibytes(4),
    }));
    Template.fromStack(stack).hasResourceProperties(CUSTOM_RESOURCE, {
      Name: 'web-1.0',
      KernelArgs: '--ipv4=10.0.0.2/24 --hello="a b"',
      Layout: 'mbr',
      VolumeSizeGiB: '4',
    });
  });

  test('the architecture of a local kernel comes from inspecting it', () => {
    const stack = newStack({ region: 'us-east-1' });
    const ami = new MirageUnikernelAmi(stack, 'Hello', helloProps({ kernel: UnikernelKernel.fromFile(PV_I386_KERNEL) }));
    expect(ami.architecture).toBe(KernelArchitecture.I386);
    // us-east-1's 32-bit PV-GRUB 1.05 hd0 AKI.
    Template.fromStack(stack).hasResourceProperties(CUSTOM_RESOURCE, { Architecture: 'i386', KernelId: 'aki-04206613' });
  });

  test('a gzip-compressed kernel is accepted as is', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ kernel: UnikernelKernel.fromFile(kernelFixture('pv-x86_64.elf.gz')) }));
    Template.fromStack(stack).hasResourceProperties(CUSTOM_RESOURCE, { KernelKey: Match.stringLikeRegexp('\\.gz$'), Architecture: 'x86_64' });
  });

  test('what inspection warns about a kernel becomes a synth warning', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ kernel: UnikernelKernel.fromFile(kernelFixture('pv-x86_64-unloaded-note.elf')) }));
    Annotations.fromStack(stack).hasWarning('/TestStack/Hello', Match.stringLikeRegexp('pv-x86_64-unloaded-note.elf: .*outside the PT_NOTE segments'));
  });

  test('a kernel without inspection warnings gives no warning', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps());
    Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
  });

  test('an S3 kernel is read by the handler: bucket, key, version and the architecture given', () => {
    const stack = newStack();
    const bucket = new s3.Bucket(stack, 'Kernels');
    new MirageUnikernelAmi(stack, 'Hello', helloProps({
      kernel: UnikernelKernel.fromBucket(bucket, 'unikernels/hello.xen', 'v3'),
      architecture: KernelArchitecture.I386,
    }));
    const template = Template.fromStack(stack);
    template.hasResourceProperties(CUSTOM_RESOURCE, {
      KernelBucket: { Ref: stack.getLogicalId(bucket.node.defaultChild as s3.CfnBucket) },
      KernelKey: 'unikernels/hello.xen',
      KernelObjectVersion: 'v3',
      Architecture: 'i386',
    });
    const reads = statementsAllowing(handlerStatements(template), 's3:GetObjectVersion');
    expect(reads).toHaveLength(1);
    expect(reads[0].Action).toEqual(['s3:GetObject', 's3:GetObjectVersion']);
    expect(JSON.stringify(reads[0].Resource)).toContain('/unikernels/hello.xen');
  });

  test('an S3 kernel defaults to x86_64 and is read without a version', () => {
    const stack = newStack();
    const bucket = s3.Bucket.fromBucketName(stack, 'Kernels', 'my-kernels');
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ kernel: UnikernelKernel.fromBucket(bucket, 'hello.xen') }));
    const template = Template.fromStack(stack);
    template.hasResourceProperties(CUSTOM_RESOURCE, { KernelBucket: 'my-kernels', KernelObjectVersion: Match.absent(), Architecture: 'x86_64' });
    const reads = statementsAllowing(handlerStatements(template), 's3:GetObject')
      .filter((statement) => JSON.stringify(statement.Resource).includes('my-kernels'));
    expect(reads).toHaveLength(1);
    expect(reads[0].Action).toBe('s3:GetObject');
    expect(JSON.stringify(reads[0].Resource)).toContain(':s3:::my-kernels/hello.xen');
  });

  test('a KMS-encrypted kernel bucket lets the handler decrypt', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'KernelKey');
    const bucket = new s3.Bucket(stack, 'Kernels', { encryptionKey: key });
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ kernel: UnikernelKernel.fromBucket(bucket, 'hello.xen') }));
    const decrypt = statementsAllowing(handlerStatements(Template.fromStack(stack)), 'kms:Decrypt');
    expect(decrypt).toHaveLength(1);
    expect(decrypt[0].Resource).toEqual({ 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as kms.CfnKey), 'Arn'] });
  });

  test('attributes are the handler\'s outputs', () => {
    const stack = newStack();
    const ami = new MirageUnikernelAmi(stack, 'Hello', helloProps());
    const logicalId = Object.keys(Template.fromStack(stack).findResources(CUSTOM_RESOURCE))[0];
    expect(stack.resolve(ami.imageId)).toEqual({ 'Fn::GetAtt': [logicalId, 'ImageId'] });
    expect(stack.resolve(ami.snapshotId)).toEqual({ 'Fn::GetAtt': [logicalId, 'SnapshotId'] });
    expect(stack.resolve(ami.kernelId)).toEqual({ 'Fn::GetAtt': [logicalId, 'KernelId'] });
  });

  test('machineImage() is the AMI, Linux, with empty user data', () => {
    const stack = newStack();
    const ami = new MirageUnikernelAmi(stack, 'Hello', helloProps());
    const image = ami.machineImage().getImage(stack);
    expect(stack.resolve(image.imageId)).toEqual(stack.resolve(ami.imageId));
    expect(image.osType).toBe(ec2.OperatingSystemType.LINUX);
    expect(image.userData.render()).toBe('');
  });
});

describe('removal policy', () => {
  test('RETAIN keeps the AMI through the handler; CloudFormation still deletes the resource', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ removalPolicy: RemovalPolicy.RETAIN }));
    Template.fromStack(stack).hasResource(CUSTOM_RESOURCE, {
      Properties: Match.objectLike({ RemovalPolicy: 'retain' }),
      DeletionPolicy: 'Delete',
    });
  });

  test.each([RemovalPolicy.SNAPSHOT, RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE])('%s is refused', (policy) => {
    const stack = newStack();
    expect(() => new MirageUnikernelAmi(stack, 'Hello', helloProps({ removalPolicy: policy })))
      .toThrow(new RegExp(`removalPolicy ${policy} is not supported.*RemovalPolicy.DESTROY.*RemovalPolicy.RETAIN`));
  });
});

describe('encryption', () => {
  test('encryption alone uses the AWS managed key and adds no KMS permission', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ encryption: true }));
    const template = Template.fromStack(stack);
    template.hasResourceProperties(CUSTOM_RESOURCE, { Encrypted: 'true', KmsKeyArn: Match.absent() });
    // (only the encryption-by-default check's kms:DescribeKey of this account's keys, which every stack has)
    expect(handlerStatements(template).filter((statement) => JSON.stringify(statement.Action).includes('kms:') && !JSON.stringify(statement.Resource).includes(':key/*'))).toEqual([]);
  });

  test('a key implies encryption and is granted, CreateGrant only for AWS resources (details per strategy: build-infrastructure.test.ts)', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key');
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ encryptionKey: key }));
    const template = Template.fromStack(stack);
    const keyArn = { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as kms.CfnKey), 'Arn'] };
    template.hasResourceProperties(CUSTOM_RESOURCE, { Encrypted: 'true', KmsKeyArn: keyArn });
    const createGrant = statementsAllowing(handlerStatements(template), 'kms:CreateGrant');
    expect(createGrant).toHaveLength(1);
    expect(createGrant[0].Resource).toEqual(keyArn);
    expect(createGrant[0].Condition?.Bool).toEqual({ 'kms:GrantIsForAWSResource': 'true' });
  });

  test('a key with encryption false is refused', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key');
    expect(() => new MirageUnikernelAmi(stack, 'Hello', helloProps({ encryption: false, encryptionKey: key })))
      .toThrow(/encryptionKey was given but encryption is false/);
  });
});

describe('tags', () => {
  test('tags applied with Tags.of reach the custom resource as a map', () => {
    const stack = newStack();
    const ami = new MirageUnikernelAmi(stack, 'Hello', helloProps());
    Tags.of(stack).add('team', 'unikernels');
    Tags.of(ami).add('env', 'test');
    Template.fromStack(stack).hasResourceProperties(CUSTOM_RESOURCE, { Tags: { team: 'unikernels', env: 'test' } });
  });

  test('tags excluded for the custom resource type do not reach it', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps());
    Tags.of(stack).add('team', 'unikernels', { excludeResourceTypes: [CUSTOM_RESOURCE] });
    Template.fromStack(stack).hasResourceProperties(CUSTOM_RESOURCE, { Tags: Match.absent() });
  });
});

describe('synth-time validation', () => {
  test.each([
    ['pvh-only.elf', /cannot be booted by AWS PV-GRUB: .*PVH-only/],
    ['no-xen-notes.elf', /cannot be booted by AWS PV-GRUB: .*without Xen ELF notes/],
    ['junk.bin', /cannot be booted by AWS PV-GRUB: .*neither an ELF file/],
    ['pv-aarch64-machine.elf', /cannot be booted by AWS PV-GRUB: .*AArch64/],
  ])('the kernel file %s is refused with the inspection\'s reason', (fixture, message) => {
    const stack = newStack();
    expect(() => new MirageUnikernelAmi(stack, 'Hello', helloProps({ kernel: UnikernelKernel.fromFile(kernelFixture(fixture)) }))).toThrow(message);
  });

  test('a missing kernel file is refused', () => {
    const stack = newStack();
    expect(() => new MirageUnikernelAmi(stack, 'Hello', helloProps({ kernel: UnikernelKernel.fromFile('/nonexistent/hello.xen') })))
      .toThrow(/Cannot read the unikernel kernel file \/nonexistent\/hello.xen: .*ENOENT/);
  });

  test('an empty object key is refused', () => {
    const stack = newStack();
    const bucket = s3.Bucket.fromBucketName(stack, 'Kernels', 'my-kernels');
    expect(() => UnikernelKernel.fromBucket(bucket, '')).toThrow(/empty object key/);
  });

  test('an explicit architecture that contradicts the kernel file is refused', () => {
    const stack = newStack();
    expect(() => new MirageUnikernelAmi(stack, 'Hello', helloProps({ architecture: KernelArchitecture.I386 })))
      .toThrow(/architecture is i386, but the kernel file is a x86_64 kernel/);
  });

  describe('a kernel larger than the volume', () => {
    let directory: string;
    /** A sparse file of `sizeBytes`: the size is checked before the file is read, so it costs no memory. */
    const sparseKernel = (sizeBytes: number) => {
      const file = path.join(directory, `kernel-${sizeBytes}.xen`);
      fs.closeSync(fs.openSync(file, 'w'));
      fs.truncateSync(file, sizeBytes);
      return file;
    };
    beforeAll(() => {
      directory = fs.mkdtempSync(path.join(os.tmpdir(), 'mua-construct-'));
    });
    afterAll(() => fs.rmSync(directory, { recursive: true, force: true }));

    test.each([
      [1, DiskLayout.WHOLE_VOLUME, 1024 ** 3],
      [1, DiskLayout.MBR_PARTITION, 1024 ** 3],
      [2, DiskLayout.WHOLE_VOLUME, 3 * 1024 ** 3],
    ])('is refused on a %d GiB volume (%s), naming both sizes', (gib, layout, sizeBytes) => {
      const kernel = sparseKernel(sizeBytes);
      expect(() => new MirageUnikernelAmi(newStack(), 'Hello', helloProps({ kernel: UnikernelKernel.fromFile(kernel), volumeSize: Size.gibibytes(gib), layout })))
        .toThrow(`is ${sizeBytes} bytes, but the volume holds a kernel of at most ${maxKernelBytes(gib, layout)} bytes. Give a larger volumeSize`);
    });
  });

  test.each([
    [Size.mebibytes(1536), /volumeSize is 1.5 GiB: an EBS volume is a whole number of GiB, at least 1/],
    [Size.gibibytes(0), /volumeSize is 0 GiB/],
    [Size.tebibytes(17), /volumeSize 17408 GiB with layout 'whole' cannot be used/],
  ])('volume size %s is refused', (volumeSize, message) => {
    const stack = newStack();
    expect(() => new MirageUnikernelAmi(stack, 'Hello', helloProps({ volumeSize }))).toThrow(message);
  });

  test('a volume too large for an MBR partition table is refused for the mbr layout only', () => {
    expect(() => new MirageUnikernelAmi(newStack(), 'Hello', helloProps({ volumeSize: Size.tebibytes(4), layout: DiskLayout.MBR_PARTITION })))
      .toThrow(/volumeSize 4096 GiB with layout 'mbr' cannot be used/);
    expect(() => new MirageUnikernelAmi(newStack(), 'Hello', helloProps({ volumeSize: Size.tebibytes(4) }))).not.toThrow();
  });

  test.each(['hello world', '', '-hello', 'x'.repeat(65)])('the name %j is refused', (name) => {
    expect(() => new MirageUnikernelAmi(newStack(), 'Hello', helloProps({ name }))).toThrow(/Invalid unikernel name/);
  });

  test.each([
    ['a line break', 'a\nb'],
    ['1024 bytes', 'x'.repeat(1024)],
  ])('kernel arguments with %s are refused', (_label, kernelArgs) => {
    expect(() => new MirageUnikernelAmi(newStack(), 'Hello', helloProps({ kernelArgs }))).toThrow(/kernel arguments/i);
  });

  test('a name from a token is left to the handler', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ name: Lazy.string({ produce: () => 'late name' }) }));
    Template.fromStack(stack).hasResourceProperties(CUSTOM_RESOURCE, { Name: 'late name' });
  });
});

describe('instances', () => {
  test('none unless asked for', () => {
    const stack = newStack();
    const ami = new MirageUnikernelAmi(stack, 'Hello', helloProps());
    expect(ami.instances).toEqual([]);
    Template.fromStack(stack).resourceCountIs('AWS::EC2::Instance', 0);
  });

  test('one t1.micro from the AMI with IMDSv2, no key pair and a security group without inbound rules', () => {
    const stack = newStack();
    const ami = new MirageUnikernelAmi(stack, 'Hello', helloProps({ instances: {} }));
    const template = Template.fromStack(stack);
    expect(ami.instances).toHaveLength(1);
    const amiId = Object.keys(template.findResources(CUSTOM_RESOURCE))[0];
    template.resourceCountIs('AWS::EC2::Instance', 1);
    template.hasResourceProperties('AWS::EC2::Instance', {
      ImageId: { 'Fn::GetAtt': [amiId, 'ImageId'] },
      InstanceType: 't1.micro',
      MetadataOptions: { HttpTokens: 'required' },
      KeyName: Match.absent(),
      SubnetId: { Ref: Match.stringLikeRegexp('^MirageUnikernelAmiBuildInfrastructureVpcPublicSubnet') },
      Tags: [{ Key: 'Name', Value: 'hello' }],
    });
    template.resourceCountIs('AWS::EC2::LaunchTemplate', 0);
    const instanceGroups = template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('^hello unikernel instances') } });
    expect(Object.keys(instanceGroups)).toHaveLength(1);
    const group = Object.values(instanceGroups)[0].Properties;
    expect(group.SecurityGroupIngress).toBeUndefined();
    expect(group.SecurityGroupEgress).toEqual([expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: '-1' })]);
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
  });

  test('several instances share one security group', () => {
    const stack = newStack();
    const ami = new MirageUnikernelAmi(stack, 'Hello', helloProps({ instances: { count: 3, instanceType: new ec2.InstanceType('m3.medium') } }));
    const template = Template.fromStack(stack);
    expect(ami.instances).toHaveLength(3);
    template.resourceCountIs('AWS::EC2::Instance', 3);
    const groups = Object.values(template.findResources('AWS::EC2::Instance')).map((instance) => JSON.stringify(instance.Properties.SecurityGroupIds));
    expect(new Set(groups).size).toBe(1);
    template.hasResourceProperties('AWS::EC2::Instance', { InstanceType: 'm3.medium', Tags: [{ Key: 'Name', Value: 'hello-3' }] });
  });

  test('a given VPC, subnets and security group are used', () => {
    const stack = newStack();
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 1 });
    const securityGroup = new ec2.SecurityGroup(stack, 'Web', { vpc });
    new MirageUnikernelAmi(stack, 'Hello', helloProps({
      instances: { vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }, securityGroup },
    }));
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::EC2::Instance', {
      SubnetId: { Ref: Match.stringLikeRegexp('^VpcPrivateSubnet1') },
      SecurityGroupIds: [{ 'Fn::GetAtt': [stack.getLogicalId(securityGroup.node.defaultChild as ec2.CfnSecurityGroup), 'GroupId'] }],
    });
    template.resourceCountIs('AWS::EC2::SecurityGroup', 2); // the given one and the helper's
  });

  test.each(['m5.large', 't3.micro', 't2.micro'])('instance type %s is refused: not a PV family', (instanceType) => {
    expect(() => new MirageUnikernelAmi(newStack(), 'Hello', helloProps({ instances: { instanceType: new ec2.InstanceType(instanceType) } })))
      .toThrow(new RegExp(`instances.instanceType ${instanceType} cannot run a paravirtual AMI.*c1, c3, hs1, m1, m2, m3, t1`));
  });

  test('an instance type from a token is let through', () => {
    const stack = newStack();
    const instanceType = new ec2.InstanceType(Lazy.string({ produce: () => 'c1.medium' }));
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ instances: { instanceType } }));
    Template.fromStack(stack).hasResourceProperties('AWS::EC2::Instance', { InstanceType: 'c1.medium' });
  });

  test('defaults: basic monitoring, no termination protection, the AMI\'s unencrypted root mapping', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ instances: {} }));
    const instance = Object.values(Template.fromStack(stack).findResources('AWS::EC2::Instance'))[0].Properties;
    expect(instance.Monitoring).toBe(false);
    expect(instance.DisableApiTermination).toBe(false);
    expect(instance.BlockDeviceMappings).toBeUndefined();
  });

  test('detailed monitoring, termination protection and an encrypted root volume on request', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps({
      volumeSize: Size.gibibytes(2),
      instances: { instanceType: new ec2.InstanceType('m3.medium'), detailedMonitoring: true, terminationProtection: true, encryptRootVolume: true },
    }));
    Template.fromStack(stack).hasResourceProperties('AWS::EC2::Instance', {
      Monitoring: true,
      DisableApiTermination: true,
      BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { Encrypted: true, VolumeSize: 2, VolumeType: 'gp2', DeleteOnTermination: true } }],
    });
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('Encrypted root volumes'))).toEqual([]);
  });

  test('an encrypted AMI gives encrypted root volumes with its key, shown in the template', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key');
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ encryptionKey: key, instances: { instanceType: new ec2.InstanceType('c3.large') } }));
    Template.fromStack(stack).hasResourceProperties('AWS::EC2::Instance', {
      BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: Match.objectLike({ Encrypted: true, KmsKeyId: { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as kms.CfnKey), 'Arn'] } }) }],
    });
    expect(() => new MirageUnikernelAmi(newStack(), 'Plain', helloProps({ encryption: true, instances: { encryptRootVolume: false } })))
      .toThrow(/encryptRootVolume is false, but the AMI is encrypted/);
  });

  test('an encrypted root volume on an older PV family is allowed with a warning that it is unconfirmed', () => {
    const stack = newStack();
    new MirageUnikernelAmi(stack, 'Hello', helloProps({ instances: { encryptRootVolume: true } }));
    Annotations.fromStack(stack).hasWarning('/TestStack/Hello', Match.stringLikeRegexp('Encrypted root volumes on t1.micro instances are not confirmed'));
  });

  test.each([0, -1, 1.5])('count %d is refused', (count) => {
    expect(() => new MirageUnikernelAmi(newStack(), 'Hello', helloProps({ instances: { count } }))).toThrow(/instances.count is .*: give a whole number of instances, 1 or more/);
  });
});
