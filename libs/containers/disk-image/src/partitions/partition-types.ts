/** GPT type GUIDs of partitions that hold a Linux filesystem (lower-case canonical text). */
const LINUX_FILESYSTEM_GUIDS = new Set([
  '0fc63daf-8483-4772-8e79-3d69d8477de4', // Linux filesystem data
  // Discoverable Partitions Specification: home, srv, var, var/tmp.
  '933ac7e1-2eb4-4f13-b844-0e14e2aef915',
  '3b8f8425-20e0-4f3b-907f-1a25a76f98e8',
  '4d21b016-b534-45c2-a9fb-5c16e091fd2d',
  '7ec6f557-3bc5-4aca-b293-16ef5df639d1',
  // Root, per architecture: x86, x86-64, Alpha, ARC, ARM, ARM64, IA-64, LoongArch64,
  // MIPS LE 32/64, PPC, PPC64, PPC64LE, RISC-V 32/64, s390, s390x, TILE-Gx.
  '44479540-f297-41b2-9af7-d131d5f0458a',
  '4f68bce3-e8cd-4db1-96e7-fbcaf984b709',
  '6523f8ae-3eb1-4e2a-a05a-18b695ae656f',
  'd27f46ed-2919-4cb8-bd25-9531f3c16534',
  '69dad710-2ce4-4e3c-b16c-21a1d49abed3',
  'b921b045-1df0-41c3-af44-4c6f280d3fae',
  '993d8d3d-f80e-4225-855a-9daf8ed7ea97',
  '77055800-792c-4f94-b39a-98c91b762bb6',
  '37c58c8a-d913-4156-a25f-48b1b64e07f0',
  '700bda43-7a34-4507-b179-eeb93d7a7ca3',
  '1de3f1ef-fa98-47b5-8dcd-4a860a654d78',
  '912ade1d-a839-4913-8964-a10eee08fbd2',
  'c31c45e6-3f39-412e-80fb-4809c4980599',
  '60d5a7fe-8e7d-435c-b714-3dd8162144e1',
  '72ec70a6-cf74-40e6-bd49-4bda08e8f224',
  '08a7acea-624c-4a20-91e8-6e0fa67d23f9',
  '5eead9a9-fe09-4a1e-a1d7-520d00531306',
  'c50cdd70-3862-4cc3-90e1-809a8c93ee2c',
  // /usr, same architecture order.
  '75250d76-8cc6-458e-bd66-bd47cc81a812',
  '8484680c-9521-48c6-9c11-b0720656f69e',
  'e18cf08c-33ec-4c0d-8246-c6c6fb3da024',
  '7978a683-6316-4922-bbee-38bff5a2fecc',
  '7d0359a3-02b3-4f0a-865c-654403e70625',
  'b0e01050-ee5f-4390-949a-9101b17104e9',
  '4301d2a6-4e3b-4b2a-bb94-9e0b2c4225ea',
  'e611c702-575c-4cbe-9a46-434fa0bf7e3f',
  '0f4868e9-9952-4706-979f-3ed3a473e947',
  'c97c1f32-ba06-40b4-9f22-236061b08aa8',
  '7d14fec5-cc71-415d-9d6c-06bf0b3c3eaf',
  '2c9739e2-f068-46b3-9fd0-01c5a9afbcca',
  '15bb03af-77e7-4d4a-b12b-c0d084f7491c',
  'b933fb22-5c3f-4f91-af90-e2bb0fa50702',
  'beaec34b-8442-439b-a40b-984381ed097d',
  'cd0f869b-d0fb-4ca0-b141-9ea87cc78d66',
  '8a4f5770-50aa-4ed3-874a-99b710db6fea',
  '55497029-c7c1-44cc-aa39-815ed1558630',
]);

export function isLinuxFilesystemGuid(guid: string): boolean {
  return LINUX_FILESYSTEM_GUIDS.has(guid);
}

export const MBR_LINUX = 0x83;
/** DOS extended (CHS), Windows extended (LBA), Linux extended. */
export const MBR_EXTENDED_TYPES: ReadonlySet<number> = new Set([0x05, 0x0f, 0x85]);
export const MBR_GPT_PROTECTIVE = 0xee;
