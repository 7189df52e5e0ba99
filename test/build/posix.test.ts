import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildFixture, roam, roamInBackground, sleep, tempDir, waitForContainer } from '../helpers.js';

// The POSIX layer roam cc links by default (runtime/posix, docs/posix.md).
const { dir, cleanup } = tempDir();
let posix: { plain: string; roam: string };
before(() => {
  posix = buildFixture('posix', dir);
});
after(cleanup);

/** What test/fixtures/posix.c prints with /tmp preopened, HOME=/home/guest, stdin a pipe. */
const expectedStdout = `
-- files
chmod: 0 -
chmod missing: -1 ENOENT
fchmod: 0 -
chown root: 0 -
chown other: -1 EPERM
fchown keep: 0 -
lchown missing: -1 ENOENT
umask: 022 then 077
mkfifo: -1 ENOSYS
mkfifo again: -1 ENOSYS
mkfifo existing: -1 EEXIST
mknod chr: -1 EPERM
mknod reg: 0 -
mknod reg made a file: 1
statvfs: -1 ENOSYS
statvfs missing: -1 ENOENT
futimes: 0 -
mtime: 1234567890
S_IFIFO 0x1000 S_IFSOCK 0xc000 fifo(sock)=0
realpath: ok -
realpath: /tmp/f
get_current_dir_name: /
access R_OK: 0 -
-- identity
ids: 0 0 0 0
getgroups: 0 -
passwd: root 0 0 /home/guest /bin/sh
getpwnam root: ok -
getpwnam nobody: NULL 0
getpwuid_r small: ERANGE
group: root 0 no members
getgrnam wheel: NULL 0
setuid 0: 0 -
setuid 1000: -1 EPERM
setgid 1000: -1 EPERM
getlogin: root
gethostname: 0 -
hostname: roam
uname: WASI roam preview1 roam wasm32
nofile: 1024 1024
setrlimit lower: 0 -
getdtablesize: 256
setrlimit raise: -1 EPERM
stack: 8388608
pagesize: 65536
nice -1: -1 EPERM
nice 5: 5 -
-- process
system(NULL): 0
system: -1 ENOSYS
popen: NULL ENOSYS
fork: -1 ENOSYS
fork again: -1 ENOSYS
execvp: -1 ENOSYS
waitpid: -1 ECHILD
wait: -1 ECHILD
kill other: -1 ENOSYS
kill self 0: 0 -
-- signals
sigset holds 1..64 distinctly: 1
sigaddset 65: -1 EINVAL
sigaction USR1: 0 -
raise USR1: caught 1 code 0
sigaction reads back: 1
sigaction KILL: -1 EINVAL
kill self USR1: 0 -
blocked: caught 1 pending 1
unblocked: caught 2
SA_RESETHAND: caught 1 reset 1
signal() seen by sigaction: 1
alarm(5): 0
alarm(0): 5
itimer running: 1
pause with timer: -1 EINTR
SIGALRM caught: 1
pause without timer: -1 ENOSYS
sigsuspend without timer: -1 ENOSYS
-- descriptors
dup: 4 -
pipe: 0 -
pipe carries: hello
dup2 same: 1 -
dup2 closed: -1 EBADF
fcntl F_DUPFD: 10 -
fcntl F_GETFD: 1 -
F_GETFL rdwr: 1
F_SETFL append: 0 -
F_GETFL append: 1
fdopen: ok -
tcgetattr stdin: -1 ENOTTY
tcgetattr closed: -1 EBADF
ttyname: NULL ENOTTY
cfmakeraw: echo 0 icanon 0 speed 1
-- memory
mprotect: 0 -
mlock: 0 -
munlock: 0 -
mlockall: 0 -
msync: 0 -
madvise WILLNEED: 0 -
madvise DONTNEED: -1 EINVAL
-- tempfiles
mkstemp: 1 /tmp/foo 1
mkstemp bad template: -1 EINVAL
mkdtemp: 1
tmpfile: ok -
tmpfile reads back: scratch
tmpnam: /tmp/tmp. 15
tempnam: /tmp/pre
-- time
tzname: UTC UTC timezone 0 daylight 0
timegm: 1709210096
localtime hour: 22
gettimeofday zone: 0 0
-- dlfcn
dlopen: NULL ENOSYS
dlerror: dynamic loading is not available in WebAssembly (roam)
dlerror again: NULL
dladdr: 0
-- misc
flock: 0 -
flock bad: -1 EINVAL
lockf: 0 -
getpass: NULL ENOTTY
chroot: -1 EPERM
pthread_once ran
pthread_mutex_lock: 0 then EBUSY
long double: 6.500
`.slice(1);

const unsupported = (fn: string, why: string, result: string, errno: string) =>
  `roam: ${fn} is not available in WebAssembly (${why}); returning ${result} with errno ${errno}\n`;
const processes = 'a WASI guest is one process and cannot start others';
const noSignals = 'no signal can arrive: nothing sends signals to a WebAssembly guest yet';

/** Each unsupported call once, in call order (fork and mkfifo are called twice), and syslog's line. */
const expectedStderr = [
  unsupported('mkfifo()', 'WASI file systems have no FIFOs', '-1', 'ENOSYS'),
  unsupported('statvfs()', "WASI cannot tell a file system's size or free space", '-1', 'ENOSYS'),
  unsupported('system()', processes, '-1', 'ENOSYS'),
  unsupported('popen()', processes, 'NULL', 'ENOSYS'),
  unsupported('fork()', processes, '-1', 'ENOSYS'),
  unsupported('execvp()', processes, '-1', 'ENOSYS'),
  unsupported('kill()', 'a WASI guest sees no other process to signal', '-1', 'ENOSYS'),
  unsupported('pause()', noSignals, '-1', 'ENOSYS'),
  unsupported('sigsuspend()', noSignals, '-1', 'ENOSYS'),
  unsupported('madvise()', 'WebAssembly memory cannot be discarded or given back', '-1', 'EINVAL'),
  unsupported('dlopen()', 'there are no shared objects to load', 'NULL', 'ENOSYS'),
  'posix[42]: hello 42\n',
  unsupported('getpass()', 'WASI gives no access to a terminal to read a password from', 'NULL', 'ENOTTY'),
].join('');

test('each group of the POSIX layer behaves as documented, in plain and migratable modules', () => {
  for (const module of [posix.plain, posix.roam]) {
    const scratch = join(dir, `tmp-${module === posix.plain ? 'plain' : 'roam'}`);
    mkdirSync(scratch);
    const run = roam(['run', '--dir', `${scratch}:/tmp`, '--env', 'HOME=/home/guest', module], { input: '' });
    assert.equal(run.stdout, expectedStdout);
    assert.equal(run.stderr, expectedStderr);
    assert.equal(run.status, 0);
    // tmpfile()'s file keeps a name while open (so it can migrate) and is removed at exit.
    assert.deepEqual(
      readdirSync(scratch).filter((name) => name.startsWith('tmpfile-')),
      [],
    );
  }
});

test('every container has a temporary directory of its own: temp files work without --dir, and it goes when the program ends', () => {
  const hostTemp = join(dir, 'host-tmp');
  mkdirSync(hostTemp);
  // roam run makes the container's directory under the host's TMPDIR.
  const run = roam(['run', posix.plain, '--', 'notemp'], { input: '', env: { ...process.env, TMPDIR: hostTemp } });
  assert.equal(run.stdout, 'tmpfile: ok -\ntmpfile again: ok -\ntmpnam: ok -\n');
  assert.equal(run.stderr, '');
  assert.equal(run.status, 0);
  assert.deepEqual(readdirSync(hostTemp), [], 'removed when the program ended');
});

test("a program's own definition wins over the layer's (weak symbols)", () => {
  const source = join(dir, 'own-mkstemp.c');
  writeFileSync(
    source,
    `#include <stdio.h>
#include <stdlib.h>
int mkstemp(char *template_) { (void)template_; return 42; }
int main(void) {
  char file[] = "/nowhere/fileXXXXXX";
  char directory[] = "/nowhere/dirXXXXXX"; /* mkdtemp comes from the layer's tempfiles.o */
  printf("mkstemp=%d mkdtemp=%s\\n", mkstemp(file), mkdtemp(directory) ? "made" : "failed");
  return 0;
}
`,
  );
  const module = join(dir, 'own-mkstemp.wasm');
  const cc = roam(['cc', '-O2', source, '-o', module]);
  assert.equal(cc.status, 0, cc.stderr);
  const run = roam(['run', module]);
  assert.equal(run.stdout, 'mkstemp=42 mkdtemp=failed\n');
  assert.equal(run.status, 0);
});

test('configure-style probes: what the layer defines links, what it does not define does not', () => {
  // As autoconf's AC_CHECK_FUNCS writes them: a prototype of its own, no header.
  const probe = (fn: string) => {
    const source = join(dir, `conftest-${fn}.c`);
    writeFileSync(
      source,
      `#define ${fn} innocuous_${fn}\n#include <limits.h>\n#undef ${fn}\nchar ${fn} (void);\nint main (void) { return ${fn} (); }\n`,
    );
    return roam(['cc', '-o', join(dir, `conftest-${fn}`), source], { cwd: dir });
  };
  for (const fn of [
    'fork',
    'sigaction',
    'getpwnam',
    'mkstemp',
    'dlopen',
    'statvfs',
    'pipe',
    'pthread_create',
    'socket',
    'getaddrinfo',
  ]) {
    assert.equal(probe(fn).status, 0, `${fn} should link`);
  }
  for (const fn of ['posix_spawn', 'sigaltstack', 'gethostbyname']) {
    const link = probe(fn);
    assert.notEqual(link.status, 0, `${fn} should not link`);
    assert.match(link.stderr, new RegExp(`undefined symbol: ${fn}`));
  }
});

test('roam cc links libroam-posix.a and defines __unix__', () => {
  const source = join(dir, 'unix.c');
  writeFileSync(
    source,
    'int main(void) {\n#if defined(__unix__) && defined(__unix)\n  return 0;\n#else\n  return 1;\n#endif\n}\n',
  );
  const module = join(dir, 'unix.wasm');
  const cc = roam(['cc', '-v', source, '-o', module]);
  assert.equal(cc.status, 0, cc.stderr);
  assert.match(cc.stderr, /wasm-ld[^\n]*libroam-posix\.[0-9a-f]{16}\.a/);
  assert.equal(roam(['run', module]).status, 0);
  // The layer's headers declare what wasi-libc hides (tmpfile was "deprecated: not defined on WASI").
  const strict = roam(['cc', '-Werror', '-c', '-x', 'c', '-', '-o', join(dir, 'strict.o')], {
    input:
      '#include <stdio.h>\n#include <unistd.h>\nint main(void) { return tmpfile() == 0 && getuid() == 0 && fork() < 0; }\n',
  });
  assert.equal(strict.status, 0, strict.stderr);
  assert.equal(readFileSync(join(dir, 'strict.o')).subarray(0, 4).toString('hex'), '0061736d');
});

test('setitimer delivers SIGALRM to a running loop at its migration points, and keeps ticking after a move to s390x', async () => {
  const timer = buildFixture('timer', dir);
  const run = roam(['run', timer.roam, '--', '5']);
  assert.equal(run.stdout, 'ticks=5 spun=yes\n');
  assert.equal(run.status, 0);

  // 100 ticks of 20 ms: checkpointed after about 1 s, the rest ticks on s390x.
  const runtimeDir = join(dir, 'run');
  const env = { ...process.env, ROAM_RUNTIME_DIR: runtimeDir };
  const image = join(dir, 'timer.img');
  const first = roamInBackground(['run', '--name', 'timer', timer.roam, '--', '100'], { env });
  await waitForContainer('timer', runtimeDir);
  await sleep(800);
  const checkpoint = roam(['checkpoint', 'timer', '-o', image], { env });
  assert.equal(checkpoint.status, 0, checkpoint.stderr);
  assert.equal((await first.done).stdout, '', 'stopped before its 100th tick');
  const restored = roam(['restore', image, '--isa', 's390x'], { env });
  assert.equal(restored.stdout, 'ticks=100 spun=yes\n', restored.stderr);
});

test('what the corpus needed: glibc header macros, record locks, priorities, process groups, the stack protector, -Werror as gcc', () => {
  const source = join(dir, 'corpus-needs.c');
  writeFileSync(
    source,
    `#include <sys/types.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>
__BEGIN_DECLS
int twice(int);
__END_DECLS
int twice(int x) { return 2 * x; }
int main(void) {
  char buffer[64];
  int only_incremented = 0;
  only_incremented++;
  snprintf(buffer, sizeof buffer, "%d", twice(21));
  int fd = open("corpus-needs.c", O_RDONLY);
  struct flock lock = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
  int locked = fcntl(fd, F_SETLK, &lock);
  lock.l_type = F_WRLCK;
  int asked = fcntl(fd, F_GETLK, &lock);
  int lowered = setpriority(PRIO_PROCESS, 0, -20) == -1 && errno == EPERM;
  int raised = setpriority(PRIO_PROCESS, 0, 5) == 0 && getpriority(PRIO_PROCESS, 0) == 5;
  printf("%s %d %d %d %d %d %d %d %d %d\\n", buffer, locked, asked, lock.l_type == F_UNLCK, lowered, raised,
         getppid(), getpgrp() == getpid(), setsid() == -1 && errno == EPERM, (CRTSCTS & CBAUD) == 0);
  return 0;
}
`,
  );
  const module = join(dir, 'corpus-needs.wasm');
  const cc = roam(['cc', '-O2', '-Wall', '-Werror', '-fstack-protector-strong', source, '-o', module]);
  assert.equal(cc.status, 0, cc.stderr);
  const run = roam(['run', '--dir', `${dir}:.`, module]);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, '42 0 0 1 1 1 0 1 1 1\n');
});
