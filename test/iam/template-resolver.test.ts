import { CfnTemplate, PROOF_ENVIRONMENT, RESOLVED_AL2023_IMAGE, TemplateResolver } from './template-resolver';

const TEMPLATE: CfnTemplate = {
  Parameters: { Image: { Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>', Default: '/aws/service/ami' } },
  Mappings: { Akis: { 'us-east-1': { aki: 'aki-5c21674b' } } },
  Resources: {
    Bucket: { Type: 'AWS::S3::Bucket' },
    Role: { Type: 'AWS::IAM::Role' },
    Group: { Type: 'AWS::EC2::SecurityGroup' },
  },
};

test('pseudo parameters, joins, GetAtt, Sub and FindInMap resolve as CloudFormation would for the deployment', () => {
  const resolver = new TemplateResolver(TEMPLATE);
  expect(resolver.resolve({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ec2:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':instance/*']] }))
    .toBe('arn:aws:ec2:us-east-1:123456789012:instance/*');
  expect(resolver.resolve({ Ref: 'AWS::StackName' })).toBe(PROOF_ENVIRONMENT.stackName);
  expect(resolver.resolve({ Ref: 'Image' })).toBe(RESOLVED_AL2023_IMAGE);
  expect(resolver.resolve({ 'Fn::FindInMap': ['Akis', { Ref: 'AWS::Region' }, 'aki'] })).toBe('aki-5c21674b');
  const bucket = resolver.resolve({ Ref: 'Bucket' });
  expect(bucket).toMatch(/^[a-z0-9-]{3,63}$/);
  expect(resolver.resolve({ 'Fn::GetAtt': ['Bucket', 'Arn'] })).toBe(`arn:aws:s3:::${bucket}`);
  expect(resolver.resolve({ 'Fn::Sub': 'cdk-${AWS::AccountId}-${AWS::Region}/${Bucket}' })).toBe(`cdk-123456789012-us-east-1/${bucket}`);
  expect(resolver.resolve({ 'Fn::GetAtt': ['Group', 'GroupId'] })).toMatch(/^sg-[0-9a-f]{17}$/);
  expect(resolver.resolve({ a: [{ Ref: 'AWS::NoValue' }, 'b'], c: { Ref: 'AWS::NoValue' } })).toEqual({ a: ['b'] });
});

test('the same template always resolves the same way, and different resources differently', () => {
  const once = new TemplateResolver(TEMPLATE).resolve({ Ref: 'Role' });
  expect(new TemplateResolver(TEMPLATE).resolve({ Ref: 'Role' })).toBe(once);
  expect(new TemplateResolver(TEMPLATE).resolve({ Ref: 'Bucket' })).not.toBe(once.toLowerCase());
});

test('what the resolver does not know is an error, never a guess', () => {
  const resolver = new TemplateResolver(TEMPLATE);
  expect(() => resolver.resolve({ 'Fn::If': ['C', 'a', 'b'] })).toThrow(/does not support Fn::If/);
  expect(() => resolver.resolve({ Ref: 'Missing' })).toThrow(/no such parameter or resource/);
  expect(() => resolver.resolve({ 'Fn::GetAtt': ['Role', 'RoleId'] })).toThrow(/does not know Fn::GetAtt AWS::IAM::Role.RoleId/);
});
