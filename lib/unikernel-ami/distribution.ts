/**
 * How the AMI is distributed once built: its name and description, who may launch it, when it is
 * deprecated, whether it is protected from deregistration, and the SSM parameter that publishes its
 * id. The construct's props are checked here at synth against EC2's and SSM's rules, and turned into
 * the custom resource's properties (types.ts); the handler applies them (docs/distribution.md).
 */
import { Duration, RemovalPolicy, Stack, Token, Tokenization } from 'aws-cdk-lib';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Construct } from 'constructs';
import { validationError } from './errors';
import { DeregistrationProtectionKind, ImageSharingProperties } from './types';

/** Who may use the AMI besides the account that owns it. */
export interface ImageSharing {
  /**
   * Accounts (12-digit ids) that may launch instances from the AMI. They do not need the snapshot
   * shared to launch it. If the AMI is encrypted, it must be with a customer managed key whose key
   * policy lets these accounts use it (docs/distribution.md); an AMI encrypted with the AWS managed
   * key cannot be shared.
   * @default - no account
   */
  readonly accounts?: string[];
  /**
   * Organizations (`arn:aws:organizations::<management account>:organization/o-...`) whose accounts
   * may launch instances from the AMI.
   * @default - no organization
   */
  readonly organizationArns?: string[];
  /**
   * Organizational units (`arn:aws:organizations::<management account>:ou/o-.../ou-...`) whose
   * accounts, in the unit and below it, may launch instances from the AMI.
   * @default - no organizational unit
   */
  readonly organizationalUnitArns?: string[];
  /**
   * Accounts that may create volumes from the AMI's snapshot (create-volume permission), and so read
   * the disk: the kernel and its command line. Launching does not need it; copying another account's
   * AMI (CopyImage) has needed it. Only accounts can be named, as with Packer's `snapshot_users`.
   * @default - no account
   */
  readonly snapshotAccounts?: string[];
  /**
   * Whether everyone may launch instances from the AMI (launch permission group `all`). Refused at
   * deploy while the account's block public access for AMIs is on (the default of new accounts);
   * refused at synth for an encrypted AMI, and with `deprecateAfter` beyond 730 days.
   * @default false
   */
  readonly publicLaunch?: boolean;
}

/**
 * The handler appends `-<build id>` to the AMI's name: `-mua-` and 16 hexadecimal digits
 * (handler/build-id.ts), so that a rebuild, which registers its AMI before the old one is
 * deregistered, never asks EC2 for a name it already holds.
 */
export const IMAGE_NAME_SUFFIX_LENGTH = '-mua-'.length + 16;
/** EC2 (RegisterImage): an AMI name is 3 to 128 characters. */
const IMAGE_NAME_MAX_LENGTH = 128;
/** The longest `imageName` the build id still fits after. */
export const IMAGE_NAME_PREFIX_MAX_LENGTH = IMAGE_NAME_MAX_LENGTH - IMAGE_NAME_SUFFIX_LENGTH;
/** EC2 (RegisterImage): letters, digits, parentheses, square brackets, spaces, periods, slashes, dashes, single quotes, at-signs and underscores. */
const IMAGE_NAME_CHARACTERS = /^[A-Za-z0-9()[\] ./\-'@_]+$/;
/** EC2 (RegisterImage, ModifyImageAttribute): a description is at most 255 characters. */
export const IMAGE_DESCRIPTION_MAX_LENGTH = 255;

/**
 * EnableImageDeprecation rounds the time to the minute and refuses one in the past: under a minute,
 * the deprecation time could round down to the image's creation, which is past when it is applied.
 */
const DEPRECATE_AFTER_MIN = Duration.minutes(1);
/**
 * EC2 accepts a deprecation time at most 10 years ahead; 2 years from the creation date for a public
 * AMI. Counted in whole days of 365, so that leap days never take a value past EC2's limit.
 */
export const DEPRECATE_AFTER_MAX = Duration.days(10 * 365);
export const DEPRECATE_AFTER_MAX_PUBLIC = Duration.days(2 * 365);

const ACCOUNT_ID = /^\d{12}$/;
/** Organizations API: organization ids are `o-` and 10 to 32 lowercase letters or digits; OU ids `ou-<root part>-<unit part>`. */
const ORGANIZATION_ARN = /^arn:aws[a-z-]*:organizations::\d{12}:organization\/o-[a-z0-9]{10,32}$/;
const ORGANIZATIONAL_UNIT_ARN = /^arn:aws[a-z-]*:organizations::\d{12}:ou\/o-[a-z0-9]{10,32}\/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$/;

/** Checks `imageName` (when resolved) and returns it for the ImageName property. */
export function checkImageName(scope: Construct, imageName: string | undefined): string | undefined {
  if (imageName === undefined || Token.isUnresolved(imageName)) {
    return imageName;
  }
  const fix = `The handler appends "-<build id>" (${IMAGE_NAME_SUFFIX_LENGTH} characters), so give 1 to ${IMAGE_NAME_PREFIX_MAX_LENGTH} characters ` +
    'of letters, digits, spaces and ( ) [ ] . / - \' @ _ (EC2\'s rule for AMI names), or leave imageName out to start the name with `name`.';
  if (imageName.length === 0 || imageName.length > IMAGE_NAME_PREFIX_MAX_LENGTH) {
    throw validationError(scope, `imageName ${JSON.stringify(imageName)} is ${imageName.length} characters long. ${fix}`);
  }
  const bad = [...new Set([...imageName].filter((character) => !IMAGE_NAME_CHARACTERS.test(character)))];
  if (bad.length > 0) {
    throw validationError(scope, `imageName ${JSON.stringify(imageName)} contains ${bad.map((c) => JSON.stringify(c)).join(', ')}, which EC2 does not allow in an AMI name. ${fix}`);
  }
  return imageName;
}

/** Checks `imageDescription` (when resolved) and returns it for the ImageDescription property. */
export function checkImageDescription(scope: Construct, description: string | undefined): string | undefined {
  if (description === undefined || Token.isUnresolved(description)) {
    return description;
  }
  const length = [...description].length;
  if (length === 0 || length > IMAGE_DESCRIPTION_MAX_LENGTH) {
    throw validationError(scope, `imageDescription is ${length} characters long: EC2 takes 1 to ${IMAGE_DESCRIPTION_MAX_LENGTH}. ` +
      'Shorten it, or leave imageDescription out for the default description (the unikernel\'s name and the build id).');
  }
  return description;
}

/** What the sharing checks need to know of the AMI's encryption. */
export interface SharedImageEncryption {
  readonly encrypted: boolean;
  /** Whether a customer managed key was given (`encryptionKey`). */
  readonly customerManagedKey: boolean;
}

/**
 * Checks `sharing` and returns the Sharing property, or undefined when it shares with nobody (so that
 * a stack that does not share carries no Sharing property at all).
 */
export function sharingProperties(scope: Construct, sharing: ImageSharing | undefined, encryption: SharedImageEncryption): ImageSharingProperties | undefined {
  if (sharing === undefined) {
    return undefined;
  }
  const accounts = checkList(scope, 'sharing.accounts', sharing.accounts, ACCOUNT_ID, 'a 12-digit account id such as 111122223333');
  const organizationArns = checkList(scope, 'sharing.organizationArns', sharing.organizationArns, ORGANIZATION_ARN,
    'an organization ARN such as arn:aws:organizations::111122223333:organization/o-exampleorgid (AWS Organizations console, or `aws organizations describe-organization`)');
  const organizationalUnitArns = checkList(scope, 'sharing.organizationalUnitArns', sharing.organizationalUnitArns, ORGANIZATIONAL_UNIT_ARN,
    'an organizational unit ARN such as arn:aws:organizations::111122223333:ou/o-exampleorgid/ou-examplerootid-exampleouid');
  const snapshotAccounts = checkList(scope, 'sharing.snapshotAccounts', sharing.snapshotAccounts, ACCOUNT_ID, 'a 12-digit account id such as 111122223333');
  const publicLaunch = sharing.publicLaunch === true;
  const targets = [accounts, organizationArns, organizationalUnitArns, snapshotAccounts].filter((list) => list !== undefined).length + (publicLaunch ? 1 : 0);
  if (targets === 0) {
    return undefined;
  }
  if (publicLaunch && encryption.encrypted) {
    throw validationError(scope, 'sharing.publicLaunch is true, but the AMI is encrypted (encryption or encryptionKey): EC2 does not make an AMI with encrypted ' +
      'snapshots public. Build an unencrypted AMI to share it publicly, or share it with accounts, organizations or organizational units instead.');
  }
  if (encryption.encrypted && !encryption.customerManagedKey) {
    throw validationError(scope, 'sharing is given, but the AMI is encrypted with the AWS managed key (encryption: true without encryptionKey), which EC2 ' +
      'cannot share. Give encryptionKey a customer managed KMS key whose key policy lets the accounts you share with use it (kms:DescribeKey, ' +
      'kms:CreateGrant, kms:Decrypt, kms:ReEncrypt*, kms:GenerateDataKeyWithoutPlaintext; for an organization, principal * with the condition ' +
      'aws:PrincipalOrgID): see docs/distribution.md. Or build the AMI unencrypted.');
  }
  return {
    Accounts: accounts,
    OrganizationArns: organizationArns,
    OrganizationalUnitArns: organizationalUnitArns,
    SnapshotAccounts: snapshotAccounts,
    Public: publicLaunch ? 'true' : undefined,
  };
}

/**
 * Checks one list of sharing targets: each resolved element against `shape`, no element twice. A list
 * that is a token as a whole, or an element that is one, is left to EC2. An empty list is no list.
 */
function checkList(scope: Construct, field: string, values: string[] | undefined, shape: RegExp, expected: string): string[] | undefined {
  if (values === undefined || Token.isUnresolved(values)) {
    return values;
  }
  if (values.length === 0) {
    return undefined;
  }
  const seen = new Set<string>();
  for (const value of values) {
    if (Token.isUnresolved(value)) {
      continue;
    }
    if (!shape.test(value)) {
      throw validationError(scope, `${field} contains ${JSON.stringify(value)}, which is not ${expected}. Correct or remove it.`);
    }
    if (seen.has(value)) {
      throw validationError(scope, `${field} names ${value} twice: give each only once.`);
    }
    seen.add(value);
    const partition = /^arn:([^:]+):/.exec(value)?.[1];
    const stackPartition = knownPartition(scope);
    if (partition !== undefined && stackPartition !== undefined && partition !== stackPartition) {
      throw validationError(scope, `${field} contains ${value}, of partition ${partition}, but the stack deploys to partition ${stackPartition}: ` +
        'an AMI can only be shared within its own partition. Give the ARN of that partition, or remove it.');
    }
  }
  return values;
}

/** Checks `deprecateAfter` and returns the DeprecateAfterSeconds property. */
export function deprecateAfterSeconds(scope: Construct, deprecateAfter: Duration | undefined, publicLaunch: boolean): string | undefined {
  if (deprecateAfter === undefined) {
    return undefined;
  }
  const seconds = deprecateAfter.toSeconds({ integral: false });
  if (Token.isUnresolved(seconds)) {
    return Tokenization.stringifyNumber(seconds);
  }
  const maximum = publicLaunch ? DEPRECATE_AFTER_MAX_PUBLIC : DEPRECATE_AFTER_MAX;
  if (!Number.isInteger(seconds) || seconds < DEPRECATE_AFTER_MIN.toSeconds() || seconds > maximum.toSeconds()) {
    const limit = publicLaunch
      ? `${maximum.toDays()} days for a public AMI (sharing.publicLaunch): EC2 deprecates a public AMI at most 2 years after its creation`
      : `${maximum.toDays()} days: EC2 accepts a deprecation time at most 10 years ahead`;
    throw validationError(scope, `deprecateAfter is ${deprecateAfter.toHumanString()} (${seconds} seconds): give whole seconds, at least 1 minute and at most ${limit}. ` +
      'Leave deprecateAfter out for an AMI that is never deprecated.');
  }
  return String(seconds);
}

/**
 * Checks the deregistration protection props and returns the DeregistrationProtection property,
 * undefined when off (so that a stack without protection carries no such property).
 */
export function deregistrationProtectionKind(scope: Construct, protection: boolean | undefined, cooldown: boolean | undefined, removalPolicy: RemovalPolicy):
DeregistrationProtectionKind | undefined {
  if (cooldown === true && protection !== true) {
    throw validationError(scope, 'deregistrationProtectionCooldown is true, but deregistrationProtection is not: the cooldown is a variant of the protection. ' +
      'Set deregistrationProtection to true as well, or leave deregistrationProtectionCooldown out.');
  }
  if (cooldown === true && removalPolicy !== RemovalPolicy.RETAIN) {
    throw validationError(scope, 'deregistrationProtectionCooldown needs removalPolicy RemovalPolicy.RETAIN: with the cooldown, EC2 keeps an AMI protected ' +
      'for 24 hours after the protection is turned off, longer than CloudFormation waits for a custom resource (1 hour), so a Delete (or the ' +
      'cleanup of a replaced build) could not deregister it. Set removalPolicy to RemovalPolicy.RETAIN, or leave the cooldown out (the protection ' +
      'alone is turned off by the Delete just before it deregisters the AMI).');
  }
  if (protection !== true) {
    return undefined;
  }
  return cooldown === true ? DeregistrationProtectionKind.ON_WITH_COOLDOWN : DeregistrationProtectionKind.ON;
}

/** SSM: a parameter name (or each level of its path) is letters, digits, `.`, `-` and `_`. */
const PARAMETER_NAME_LEVEL = /^[A-Za-z0-9_.-]+$/;
/** SSM: a hierarchy has at most 15 levels. */
const PARAMETER_MAX_LEVELS = 15;
/** SSM: the name counts with its full ARN (`arn:<partition>:ssm:<region>:<account>:parameter/<name>`), at most 1011 characters. */
const PARAMETER_ARN_MAX_LENGTH = 1011;
/** The longest partition and region names, assumed where the stack's are tokens, so that no region makes a name too long. */
const LONGEST_PARTITION = 'aws-us-gov';
const LONGEST_REGION = 'ap-southeast-7';

/** Checks `imageIdParameterName` (when resolved) against Systems Manager's rules for parameter names. */
export function checkParameterName(scope: Construct, name: string): void {
  if (Token.isUnresolved(name)) {
    return;
  }
  const refuse = (problem: string) => validationError(scope, `imageIdParameterName ${JSON.stringify(name)} ${problem}. Systems Manager names a parameter with ` +
    'letters, digits, ".", "-" and "_", or a path of such levels starting with "/" (at most 15), e.g. /unikernels/hello/image-id.');
  const path = name.startsWith('/') ? name.slice(1) : name;
  if (name.includes('/') && !name.startsWith('/')) {
    throw refuse('has a path but does not begin with "/": a parameter in a hierarchy needs its fully qualified name');
  }
  const levels = path.split('/');
  if (path.length === 0) {
    throw refuse('is empty');
  }
  if (levels.some((level) => level.length === 0)) {
    throw refuse('has an empty level (two slashes in a row, or one at the end)');
  }
  const bad = [...new Set([...path].filter((character) => character !== '/' && !PARAMETER_NAME_LEVEL.test(character)))];
  if (bad.length > 0) {
    throw refuse(`contains ${bad.map((c) => JSON.stringify(c)).join(', ')}, which Systems Manager does not allow`);
  }
  if (levels.length > PARAMETER_MAX_LEVELS) {
    throw refuse(`has ${levels.length} levels`);
  }
  if (/^(aws|ssm)/i.test(path)) {
    throw refuse('begins with "aws" or "ssm", which Systems Manager reserves');
  }
  const stack = Stack.of(scope);
  const region = Token.isUnresolved(stack.region) ? undefined : stack.region;
  const partition = knownPartition(scope) ?? LONGEST_PARTITION;
  const arnLength = `arn:${partition}:ssm:${region ?? LONGEST_REGION}:${'0'.repeat(12)}:parameter/${path}`.length;
  if (arnLength > PARAMETER_ARN_MAX_LENGTH) {
    const assumed = region === undefined ? ` (counting the longest partition and region, ${LONGEST_PARTITION} and ${LONGEST_REGION}, where the stack's are unknown)` : '';
    throw refuse(`makes a parameter ARN of ${arnLength} characters${assumed}, and Systems Manager allows ${PARAMETER_ARN_MAX_LENGTH}: shorten it`);
  }
}

/** The stack's partition where it is known: given, or that of its region. */
function knownPartition(scope: Construct): string | undefined {
  const stack = Stack.of(scope);
  if (!Token.isUnresolved(stack.partition)) {
    return stack.partition;
  }
  return Token.isUnresolved(stack.region) ? undefined : RegionInfo.get(stack.region).partition;
}
