# src/ops/cuda/*.cu -> C++ for the CPU emulator (emu.h): kernel launches and dynamic shared memory
# (the emulator's is 128-byte aligned, so an __align__ up to 128 is dropped).
s/([A-Za-z_][A-Za-z_0-9]*)<<<(.*)>>>\(/EMU_LAUNCH(\1, \2)(/
s/extern __shared__ (__align__\((16|32|64|128)\) )?([A-Za-z_0-9]+) ([A-Za-z_0-9]+)\[\];/\3 *\4 = (\3 *)emu::dynamic_shared();/
