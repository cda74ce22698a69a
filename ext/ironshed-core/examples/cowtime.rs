use std::time::Instant;
fn main() {
    let p = std::env::args().nth(1).unwrap();
    for _ in 0..5 {
        let t = Instant::now();
        let dev = ironshed_core::io::SourceDevice::open(std::path::Path::new(&p)).unwrap();
        let s = ironshed_core::snapshot::CowStore::read(&dev, "x").unwrap();
        let t1 = t.elapsed();
        let c = s.changes();
        let t2 = t.elapsed();
        println!(
            "{} {} read+sort {:?} changes {:?}",
            s.exceptions,
            c.ranges().len(),
            t1,
            t2
        );
    }
}
