// The exec policy: argv patterns, the file's validation with its positions, and each decision.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PolicyError, loadPolicy, parsePolicy } from './policy-file.js';
import {
  DEFAULT_MAX_OUTPUT_BYTES,
  DEFAULT_MAX_RUN_MS,
  decide,
  describeGrants,
  matchesPattern,
  type ExecAsk,
  type ExecPolicy,
} from './policy.js';

const CAROL = { user: 'carol', full: undefined };

/** A policy from a JSON-able object, read as policy.json. */
function policyOf(value: unknown): ExecPolicy {
  return parsePolicy(JSON.stringify(value, null, 2), 'policy.json');
}

/** The PolicyError message that parsing `text` as `file` throws. */
function errorOf(text: string, file = 'policy.json'): string {
  try {
    parsePolicy(text, file);
  } catch (err) {
    assert.ok(err instanceof PolicyError, `a PolicyError, not ${String(err)}`);
    return err.message;
  }
  assert.fail(`${file} was accepted`);
}

function argv(policy: ExecPolicy | undefined, ...words: string[]) {
  return decide(policy, CAROL, { kind: 'argv', argv: words });
}

describe('argv patterns', () => {
  test('"*" matches exactly one argument', () => {
    assert.equal(
      matchesPattern(['systemctl', 'restart', '*'], ['systemctl', 'restart', 'web']),
      true,
    );
    assert.equal(matchesPattern(['systemctl', 'restart', '*'], ['systemctl', 'restart']), false);
    assert.equal(
      matchesPattern(['systemctl', 'restart', '*'], ['systemctl', 'restart', 'a', 'b']),
      false,
    );
    assert.equal(
      matchesPattern(['systemctl', 'restart', '*'], ['systemctl', 'stop', 'web']),
      false,
    );
  });

  test('a final "..." matches zero or more arguments after the fixed words', () => {
    assert.equal(matchesPattern(['echo', '...'], ['echo']), true);
    assert.equal(matchesPattern(['echo', '...'], ['echo', 'a', 'b', 'c']), true);
    assert.equal(matchesPattern(['git', 'log', '...'], ['git']), false);
    assert.equal(matchesPattern(['git', 'log', '...'], ['git', 'push', '-f']), false);
  });

  test('literal words match exactly: no globbing, no extra or missing arguments', () => {
    assert.equal(matchesPattern(['uname', '-s'], ['uname', '-s']), true);
    assert.equal(matchesPattern(['uname', '-s'], ['uname', '-a']), false);
    assert.equal(matchesPattern(['uname', '-s'], ['uname', '-s', '-r']), false);
    assert.equal(matchesPattern(['uname', '-s'], ['uname']), false);
    assert.equal(matchesPattern(['ls', '/srv/*'], ['ls', '/srv/app']), false);
    assert.equal(matchesPattern(['ls', '/srv/*'], ['ls', '/srv/*']), true);
  });

  test('the program matches only as written: a bare name is not its path, nor the reverse', () => {
    assert.equal(matchesPattern(['echo', '...'], ['/bin/echo', 'hi']), false);
    assert.equal(matchesPattern(['/bin/echo', '...'], ['echo', 'hi']), false);
    assert.equal(matchesPattern(['/bin/echo', '...'], ['/bin/echo', 'hi']), true);
    assert.equal(matchesPattern(['echo', '...'], []), false);
  });

  test('shell metacharacters are literal words: a pattern matches word by word', () => {
    const p = policyOf({ users: { carol: { commands: [['echo', '*']] } } });
    const d = argv(p, 'echo', 'a;rm -rf /');
    assert.equal(d.allowed, true);
    assert.equal(d.rule, 'users.carol.commands[0] ["echo","*"]');
    // The same text split into words is two arguments, which `*` does not match.
    assert.equal(argv(p, 'echo', 'a;rm', '-rf', '/').allowed, false);
    assert.equal(argv(p, 'echo', '$(reboot)').allowed, true);
    assert.equal(argv(p, 'echo a').allowed, false, 'the program is one word, "echo a" is not echo');
  });
});

describe('validating the file', () => {
  test('a JSON policy is read with its commands, flags, push directories and limits', () => {
    const p = policyOf({
      defaults: { maxRunTime: '10m', maxOutput: '64MiB' },
      users: {
        carol: {
          commands: [
            ['echo', '...'],
            ['uname', '-s'],
          ],
          shell: true,
          script: false,
          push: ['/srv/app/', '/tmp/./drop'],
          mkdir: true,
          maxRunTime: 30,
          maxOutput: 1024,
        },
        dave: {},
      },
    });
    assert.deepEqual(p.defaults, { maxRunMs: 600_000, maxOutputBytes: 64 * 2 ** 20 });
    assert.deepEqual(p.users.get('carol'), {
      commands: [
        ['echo', '...'],
        ['uname', '-s'],
      ],
      shell: true,
      script: false,
      push: ['/srv/app', '/tmp/drop'],
      mkdir: true,
      maxRunMs: 30_000,
      maxOutputBytes: 1024,
    });
    assert.deepEqual(p.users.get('dave'), {
      commands: [],
      shell: false,
      script: false,
      push: [],
      mkdir: false,
    });
    assert.ok(Object.isFrozen(p.users.get('carol')?.commands), 'grants are frozen');
  });

  test('"..." anywhere but last is refused with file, line, column and key path', () => {
    const text = [
      '{',
      '  "users": {',
      '    "carol": {',
      '      "commands": [',
      '        ["echo", "..."],',
      '        ["uname", "-s"],',
      '        ["rm", "...", "/tmp/x"]',
      '      ]',
      '    }',
      '  }',
      '}',
    ].join('\n');
    assert.equal(
      errorOf(text),
      'policy.json:7:16: users.carol.commands[2][1]: "..." may only end a pattern',
    );
  });

  test('the program must be a literal bare name or absolute path; patterns must not be empty', () => {
    const message = errorOf(
      JSON.stringify({
        users: { carol: { commands: [['*', 'x'], ['...'], ['./run'], [], ['echo', 5]] } },
      }),
    );
    assert.match(message, /commands\[0\]\[0\]: the program \(first word\) must be literal/);
    assert.match(message, /commands\[1\]\[0\]: the program \(first word\) must be literal/);
    assert.match(message, /commands\[2\]\[0\]: .*not the relative path "\.\/run"/);
    assert.match(message, /commands\[3\]: an empty pattern matches nothing/);
    assert.match(message, /commands\[4\]\[1\]: must be a string, not number 5/);
    assert.equal(message.split('\n').length, 5, 'every problem, one a line');
  });

  test('unknown keys at every level are errors, at their line', () => {
    const text = '{\n  "user": {},\n  "defaults": {"maxRuntime": "1m"}\n}';
    assert.equal(
      errorOf(text),
      'policy.json:2:3: user: unknown key (known keys: defaults, users)\n' +
        'policy.json:3:16: defaults.maxRuntime: unknown key (known keys: maxRunTime, maxOutput)',
    );
    assert.match(
      errorOf(JSON.stringify({ users: { carol: { comands: [['ls']] } } })),
      /^policy\.json:1:20: users\.carol\.comands: unknown key/,
    );
  });

  test('user names follow the account rule', () => {
    assert.match(
      errorOf('{"users": {"Carol": {}}}'),
      /^policy\.json:1:12: users\.Carol: "Carol" is not a user name/,
    );
    assert.match(errorOf('{"users": {"a b": {}}}'), /users\["a b"\]: "a b" is not a user name/);
  });

  test('bad durations, sizes, flags and push directories are each named', () => {
    const message = errorOf(
      JSON.stringify({
        defaults: { maxRunTime: '0s', maxOutput: '1.5MiB' },
        users: {
          carol: {
            maxRunTime: '1.5h',
            maxOutput: 'lots',
            shell: 'yes',
            mkdir: 1,
            push: ['srv/app', '/srv/../etc', 7],
          },
        },
      }),
    );
    assert.match(message, /defaults\.maxRunTime: "0s" is not a duration/);
    assert.match(message, /defaults\.maxOutput: "1\.5MiB" is not a size/);
    assert.match(message, /users\.carol\.maxRunTime: "1\.5h" is not a duration .*30s, 5m/);
    assert.match(message, /users\.carol\.maxOutput: "lots" is not a size/);
    assert.match(message, /users\.carol\.shell: must be true or false, not the string "yes"/);
    assert.match(message, /users\.carol\.mkdir: must be true or false, not number 1/);
    assert.match(message, /users\.carol\.push\[0\]: must be an absolute directory, not "srv\/app"/);
    assert.match(message, /users\.carol\.push\[1\]: must not contain "\.\."/);
    assert.match(message, /users\.carol\.push\[2\]: must be an absolute directory, not number 7/);
    assert.match(errorOf('{"defaults": {"maxRunTime": -5}}'), /maxRunTime: must be a duration/);
  });

  test('a JSON syntax error is reported at its line and column', () => {
    // JSON.parse reports a position: a missing comma after a value.
    assert.equal(
      errorOf('{\n  "users": {\n    "carol": {"shell": true "script": true}\n  }\n}'),
      "policy.json:3:29: invalid JSON: Expected ',' or '}' after property value",
    );
    // A trailing comma, which YAML would accept, is still a JSON error in a .json file.
    assert.equal(
      errorOf('{\n  "users": {\n    "carol": {"shell": true,}\n  }\n}'),
      'policy.json:3:29: invalid JSON: Expected double-quoted property name',
    );
    // Node 20 gives no position for this one: the scan finds it (the "}" after "tru").
    assert.equal(
      errorOf('{\n  "users": {\n    "carol": {"shell": tru}\n  }\n}'),
      "policy.json:3:27: invalid JSON: Unexpected token '}'",
    );
  });

  test('duplicate keys are refused, not silently overridden', () => {
    assert.equal(
      errorOf('{"users": {"carol": {"shell": false, "shell": true}}}'),
      'policy.json:1:38: Map keys must be unique',
    );
  });

  test('a YAML file is read, and a bad key in it is reported at its line', () => {
    const yaml = [
      'defaults:',
      '  maxRunTime: 10m',
      'users:',
      '  carol:',
      '    commands:',
      '      - [echo, ...]',
      '      - [systemctl, restart, "*"]',
      '    shel: true',
    ].join('\n');
    assert.equal(
      errorOf(yaml, 'policy.yaml'),
      'policy.yaml:8:5: users.carol.shel: unknown key (known keys: commands, shell, script, push, mkdir, maxRunTime, maxOutput)',
    );
    const p = parsePolicy(yaml.replace('shel:', 'shell:'), 'policy.yml');
    assert.deepEqual(p.users.get('carol')?.commands, [
      ['echo', '...'],
      ['systemctl', 'restart', '*'],
    ]);
    assert.equal(p.users.get('carol')?.shell, true);
    assert.equal(p.defaults.maxRunMs, 600_000);
  });

  test('YAML "yes" is not true, and a YAML syntax error names its line', () => {
    assert.match(
      errorOf('users:\n  carol:\n    shell: yes\n', 'p.yaml'),
      /^p\.yaml:3:12: users\.carol\.shell: must be true or false, not the string "yes"$/,
    );
    assert.match(errorOf('users:\n  carol: {}\n  carol: {}\n', 'p.yaml'), /^p\.yaml:3:3: /);
    assert.match(errorOf('', 'p.yaml'), /^p\.yaml:1:1: the policy is empty/);
  });

  test('a file with another name is JSON if it parses as JSON, else YAML', () => {
    const json = parsePolicy('{"users": {"carol": {"script": true}}}', 'agent-policy');
    assert.equal(json.users.get('carol')?.script, true);
    const yaml = parsePolicy('users:\n  carol:\n    mkdir: true\n', 'agent-policy');
    assert.equal(yaml.users.get('carol')?.mkdir, true);
  });

  test('loadPolicy reads a file, and names the path and the reason when it cannot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-policy-'));
    const file = join(dir, 'policy.json');
    writeFileSync(file, JSON.stringify({ users: { carol: { commands: [['id']] } } }));
    const p = loadPolicy(file);
    assert.equal(p.file, file);
    assert.deepEqual(p.users.get('carol')?.commands, [['id']]);
    const missing = join(dir, 'nope.json');
    assert.throws(
      () => loadPolicy(missing),
      (err: unknown) =>
        err instanceof PolicyError &&
        err.message === `${missing}: cannot read the policy: no such file or directory (ENOENT)`,
    );
    assert.throws(() => loadPolicy(dir), /cannot read the policy: not a file/);
    writeFileSync(file, '{"users": {"carol": {"shell": 1}}}');
    assert.throws(
      () => loadPolicy(file),
      (err: unknown) =>
        err instanceof PolicyError && err.message.startsWith(`${file}:1:31: users.carol.shell: `),
    );
  });
});

describe('deciding', () => {
  const policy = policyOf({
    defaults: { maxRunTime: '10m', maxOutput: '64MiB' },
    users: {
      carol: {
        commands: [
          ['echo', '...'],
          ['uname', '-s'],
          ['systemctl', 'restart', '*'],
        ],
        push: ['/srv/app', '/tmp/drop'],
        maxRunTime: '30s',
        maxOutput: '1MiB',
      },
      erin: { shell: true, script: true, push: ['/srv/app'], mkdir: true },
      owner: { maxRunTime: '2h' },
    },
  });

  test('an allowed command names the pattern that allowed it and carries the user limits', () => {
    const d = argv(policy, 'systemctl', 'restart', 'nginx');
    assert.deepEqual(d, {
      allowed: true,
      rule: 'users.carol.commands[2] ["systemctl","restart","*"]',
      reason:
        'carol may run "systemctl restart nginx": users.carol.commands[2] ["systemctl","restart","*"] allows it',
      maxRunMs: 30_000,
      maxOutputBytes: 2 ** 20,
    });
  });

  test('a command no pattern matches is refused with the reason', () => {
    const d = argv(policy, 'rm', '-rf', '/');
    assert.equal(d.allowed, false);
    assert.equal(d.rule, 'no rule');
    assert.equal(
      d.reason,
      'carol may not run "rm -rf /": no pattern in users.carol.commands matches',
    );
    assert.equal(argv(policy, 'uname', '-a').allowed, false);
    assert.equal(argv(policy).allowed, false, 'an empty argv');
  });

  test('shell and script need their flag', () => {
    const shell: ExecAsk = { kind: 'shell', line: 'ls | wc -l' };
    const script: ExecAsk = { kind: 'script', name: 'deploy.sh', sha256: 'ab'.repeat(32) };
    assert.equal(decide(policy, CAROL, shell).allowed, false);
    assert.match(decide(policy, CAROL, shell).reason, /users\.carol\.shell is not true/);
    assert.equal(decide(policy, CAROL, script).allowed, false);
    const erin = { user: 'erin', full: undefined };
    assert.equal(decide(policy, erin, shell).rule, 'users.erin.shell');
    assert.equal(decide(policy, erin, shell).allowed, true);
    assert.equal(decide(policy, erin, script).allowed, true);
    assert.equal(decide(policy, erin, { kind: 'argv', argv: ['ls'] }).allowed, false);
  });

  test('limits fall back from the entry to the defaults to the built-in values', () => {
    const erin = decide(policy, { user: 'erin', full: undefined }, { kind: 'shell', line: 'x' });
    assert.equal(erin.maxRunMs, 600_000);
    assert.equal(erin.maxOutputBytes, 64 * 2 ** 20);
    const bare = policyOf({ users: { erin: { shell: true } } });
    const d = decide(bare, { user: 'erin', full: undefined }, { kind: 'shell', line: 'x' });
    assert.equal(d.maxRunMs, DEFAULT_MAX_RUN_MS);
    assert.equal(d.maxOutputBytes, DEFAULT_MAX_OUTPUT_BYTES);
  });

  describe('push directories', () => {
    const push = (dir: string, mkdir = false, user = 'carol') =>
      decide(policy, { user, full: undefined }, { kind: 'push', dir, mkdir });

    test('a granted directory and everything under it are allowed', () => {
      assert.equal(push('/srv/app').allowed, true);
      assert.equal(push('/srv/app/').allowed, true);
      assert.equal(push('/srv/app/releases/v2').allowed, true);
      assert.equal(push('/tmp/drop').rule, 'users.carol.push[1] "/tmp/drop"');
    });

    test('a sibling sharing the prefix is not under it', () => {
      const d = push('/srv/application');
      assert.equal(d.allowed, false);
      assert.match(d.reason, /not under any directory in users\.carol\.push/);
      assert.equal(push('/srv').allowed, false);
    });

    test('".." is refused even when it would land inside a granted directory', () => {
      assert.equal(push('/srv/app/../etc').allowed, false);
      assert.match(push('/srv/app/../etc').reason, /may not contain "\.\."/);
      assert.equal(push('/srv/app/x/../y').allowed, false);
      assert.equal(push('srv/app').allowed, false, 'a relative directory');
    });

    test('creating a missing directory needs mkdir', () => {
      assert.equal(push('/srv/app/new', true).allowed, false);
      assert.match(push('/srv/app/new', true).reason, /users\.carol\.mkdir is not true/);
      assert.equal(push('/srv/app/new', true, 'erin').allowed, true);
    });
  });

  test('the owner and --allow users may do anything, with their entry limits or the defaults', () => {
    const rm: ExecAsk = { kind: 'argv', argv: ['rm', '-rf', '/tmp/x'] };
    const owner = decide(policy, { user: 'owner', full: 'owner' }, rm);
    assert.equal(owner.allowed, true);
    assert.equal(owner.rule, 'owner');
    assert.equal(owner.maxRunMs, 7_200_000, "the owner's entry");
    assert.equal(owner.maxOutputBytes, 64 * 2 ** 20, 'the defaults');
    const helper = decide(policy, { user: 'frank', full: '--allow' }, { kind: 'shell', line: 'x' });
    assert.equal(helper.allowed, true);
    assert.equal(helper.rule, '--allow');
    assert.equal(helper.maxRunMs, 600_000);
    const alone = decide(undefined, { user: 'owner', full: 'owner' }, rm);
    assert.equal(alone.allowed, true, 'even without a policy');
    assert.equal(alone.maxRunMs, DEFAULT_MAX_RUN_MS);
    const push = decide(
      policy,
      { user: 'frank', full: '--allow' },
      {
        kind: 'push',
        dir: '/etc',
        mkdir: true,
      },
    );
    assert.equal(push.allowed, true);
  });

  test('a user with no entry, or any user on an agent with no policy, is refused', () => {
    const dave = decide(
      policy,
      { user: 'dave', full: undefined },
      { kind: 'argv', argv: ['echo'] },
    );
    assert.equal(dave.allowed, false);
    assert.equal(dave.rule, 'no rule');
    assert.match(dave.reason, /no rule in the policy grants dave anything$/);
    const none = argv(undefined, 'echo', 'hi');
    assert.equal(none.allowed, false);
    assert.equal(none.rule, 'no policy');
    assert.match(
      none.reason,
      /this agent has no --policy; only its owner and --allow users may run commands$/,
    );
  });

  test('control characters in a refused argv are escaped in the reason', () => {
    const d = argv(policy, 'printf', '\x1b]0;pwned\x07');
    assert.equal(d.reason.includes('\x1b'), false);
    assert.match(d.reason, /\\u001b/);
  });

  test('describeGrants lists what each user may run, or says a user has no entry', () => {
    const text = describeGrants(policy);
    assert.match(text, /^policy\.json: 3 users; defaults: each command at most 10m and 64\.0 MiB/);
    assert.match(text, /carol may run:\n {2}echo \.\.\.\n {2}uname -s\n {2}systemctl restart \*\n/);
    assert.match(text, /push into: \/srv\/app, \/tmp\/drop/);
    assert.match(text, /at most 30\.0 s and 1\.0 MiB of output/);
    const one = describeGrants(policy, 'erin');
    assert.doesNotMatch(one, /carol/);
    assert.match(one, /run shell lines \(--shell\): yes/);
    assert.match(describeGrants(policy, 'dave'), /has no entry for dave/);
  });
});
