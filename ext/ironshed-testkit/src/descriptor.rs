//! Text descriptors in the shapes ESX and QEMU write them.

/// A `createType="vmfs"` base descriptor over a raw `-flat.vmdk`.
pub fn vmfs_base(cid: u32, sectors: u64, flat_name: &str) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={cid:08x}\nparentCID=ffffffff\nisNativeSnapshot=\"no\"\ncreateType=\"vmfs\"\n\n# Extent description\nRW {sectors} VMFS \"{flat_name}\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.virtualHWVersion = \"13\"\n"
    )
}

/// A `createType="vmfsSparse"` snapshot descriptor over a COWD `-delta.vmdk`.
pub fn vmfs_sparse(
    cid: u32,
    parent_cid: u32,
    sectors: u64,
    extent_name: &str,
    parent_hint: &str,
) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={cid:08x}\nparentCID={parent_cid:08x}\nisNativeSnapshot=\"no\"\ncreateType=\"vmfsSparse\"\nparentFileNameHint=\"{parent_hint}\"\n# Extent description\nRW {sectors} VMFSSPARSE \"{extent_name}\"\n\n# The Disk Data Base\n#DDB\n\nddb.longContentID = \"0123456789abcdef0123456789abcdef\"\n"
    )
}

/// A `createType="seSparse"` snapshot descriptor over a `-sesparse.vmdk` extent.
pub fn se_sparse(
    cid: u32,
    parent_cid: u32,
    sectors: u64,
    extent_name: &str,
    parent_hint: &str,
) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={cid:08x}\nparentCID={parent_cid:08x}\nisNativeSnapshot=\"no\"\ncreateType=\"seSparse\"\nparentFileNameHint=\"{parent_hint}\"\n# Extent description\nRW {sectors} SESPARSE \"{extent_name}\"\n\n# The Disk Data Base\n#DDB\n\nddb.grain = \"8\"\nddb.longContentID = \"0123456789abcdef0123456789abcdef\"\n"
    )
}
