//! Device handling without a GPU: asking for CUDA must give a clear error (or work, on a machine
//! that has one), never a panic; tensors move between devices only when asked.

use ssvae::device::cuda_status;
use ssvae::{Device, Tensor};

#[test]
fn cuda_tensor_is_an_error_not_a_panic_without_a_gpu() {
    let r = Tensor::zeros([4], Device::Cuda(0));
    match cuda_status() {
        Ok(n) if n > 0 => {
            let t = r.expect("a GPU is present, so the allocation must work");
            assert_eq!(t.to_vec().unwrap(), vec![0.0; 4]);
        }
        status => {
            let e = r.expect_err("no GPU, so creating a CUDA tensor must fail");
            println!("no GPU ({status:?}); error: {e}");
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn to_device_round_trip_on_cpu_is_identity() {
    let t = Tensor::from_slice(&[1.0, 2.0, 3.0], [3], Device::Cpu).unwrap();
    assert_eq!(
        t.to_device(Device::Cpu).unwrap().to_vec().unwrap(),
        vec![1.0, 2.0, 3.0]
    );
}
