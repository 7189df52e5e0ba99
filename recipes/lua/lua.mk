# Builds lua (the interpreter: core + standard libraries + lua.c, not luac) twice from SRC.
# make -f lua.mk SRC=... NATIVE_CC=gcc WASM_CC=... BUILD=...
CORE = lapi lcode lctype ldebug ldo ldump lfunc lgc llex lmem lobject lopcodes lparser \
       lstate lstring ltable ltm lundump lvm lzio
LIB  = lauxlib lbaselib lcorolib ldblib liolib lmathlib loadlib loslib lstrlib ltablib \
       lutf8lib linit
OBJS = $(CORE) $(LIB) lua

NATIVE_OBJS = $(OBJS:%=$(BUILD)/native/%.o)
WASM_OBJS = $(OBJS:%=$(BUILD)/wasm/%.o)

all: $(BUILD)/lua.native $(BUILD)/lua.wasm

# Paths baked in by __FILE__ would make the output depend on where it was built.
PREFIX_MAP = -ffile-prefix-map=$(SRC)=.

$(BUILD)/native/%.o: $(SRC)/%.c
	@mkdir -p $(@D)
	$(NATIVE_CC) $(CFLAGS) $(PREFIX_MAP) -c $< -o $@

$(BUILD)/wasm/%.o: $(SRC)/%.c
	@mkdir -p $(@D)
	$(WASM_CC) $(CFLAGS) $(PREFIX_MAP) -c $< -o $@

$(BUILD)/lua.native: $(NATIVE_OBJS)
	$(NATIVE_CC) -O2 $^ -lm -o $@

$(BUILD)/lua.wasm: $(WASM_OBJS)
	$(WASM_CC) -O2 $^ -lm -o $@
