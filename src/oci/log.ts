import { appendFileSync } from 'node:fs';

export type LogFormat = 'text' | 'json';

/**
 * Where the runtime reports errors: the file of --log, as runc does (`--log-format json`: one
 * `{"level":"error","msg":...,"time":...}` line each, which podman reads to say why a container
 * failed), and stderr.
 */
export class RuntimeLog {
  constructor(
    private readonly file: string | undefined,
    private readonly format: LogFormat,
  ) {}

  /**
   * The log options of a command line, found before it is parsed, so that even a command line
   * commander refuses is reported where the engine looks.
   */
  static fromArgs(argv: string[]): RuntimeLog {
    const value = (flag: string) => {
      const at = argv.findIndex((arg) => arg === flag || arg.startsWith(`${flag}=`));
      if (at < 0) return undefined;
      return argv[at] === flag ? argv[at + 1] : argv[at]!.slice(flag.length + 1);
    };
    return new RuntimeLog(value('--log'), value('--log-format') === 'json' ? 'json' : 'text');
  }

  error(message: string): void {
    process.stderr.write(`roam-runtime: ${message}\n`);
    if (this.file === undefined) return;
    const time = new Date().toISOString();
    const line =
      this.format === 'json'
        ? JSON.stringify({ level: 'error', msg: message, time })
        : `time="${time}" level=error msg=${JSON.stringify(message)}`;
    try {
      appendFileSync(this.file, `${line}\n`);
    } catch {
      // The log is gone: stderr has it.
    }
  }
}
